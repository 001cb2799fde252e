package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kubeletVolume lays out a directory the way the kubelet projects a
// ConfigMap or Secret volume (its AtomicWriter): the data lives in a
// timestamped directory, "..data" is a symlink to it, and each key is a
// symlink "NAME -> ..data/NAME" made once. An update writes a new
// timestamped directory, points a "..data_tmp" symlink at it, renames that
// over "..data" (the one atomic step) and removes the old directory.
type kubeletVolume struct {
	t   *testing.T
	dir string
	gen int
	cur string
}

func (v *kubeletVolume) update(files map[string]string) {
	t := v.t
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2026_12_03_11_%02d_00.%09d", v.gen, v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v.cur != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.cur)); err != nil {
			t.Fatal(err)
		}
	}
	v.cur = ts
}

// TestWatcherSeesAKubeletSwap: a rules file in a mounted ConfigMap changes
// only by the swap of the "..data" symlink; the file's own path (a symlink
// that never changes) must not hide it.
func TestWatcherSeesAKubeletSwap(t *testing.T) {
	vol := &kubeletVolume{t: t, dir: t.TempDir()}
	rulesFor := func(host string) map[string]string {
		return map[string]string{
			"keyhole.yaml": "secrets:\n  K:\n    source: file:key\n    hosts: [" + host + "]\n",
			"key":          "value-" + host + "\n",
		}
	}
	vol.update(rulesFor("one.example"))
	path := filepath.Join(vol.dir, "keyhole.yaml")
	set, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loads := make(chan *Set, 10)
	errs := make(chan error, 10)
	w := &Watcher{Path: path, // the default interval: the test times what keyhole does
		OnLoad: func(s *Set) { loads <- s }, OnError: func(e error) { errs <- e }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, set, nil); close(done) }()
	defer func() { cancel(); <-done }()

	for _, host := range []string{"two.example", "three.example"} {
		start := time.Now()
		vol.update(rulesFor(host))
		select {
		case s := <-loads:
			elapsed := time.Since(start)
			t.Logf("%s: new rules in force after %v", host, elapsed.Round(time.Millisecond))
			if got := s.Secrets["K"].HostList(); len(got) != 1 || got[0] != host {
				t.Errorf("%s: hosts after the swap are %v", host, got)
			}
			v, err := s.Secrets["K"].Value()
			if err != nil || v.Reveal() != "value-"+host {
				t.Errorf("%s: the file: source in the same volume was not read again", host)
			}
			// Two looks at the default interval (see that it changed,
			// see that it settled) are half a second; the margin is for
			// a loaded machine.
			if elapsed > 3*time.Second {
				t.Errorf("%s: the swap took %v to take effect; want about a second", host, elapsed)
			}
		case err := <-errs:
			t.Fatalf("%s: reload failed: %v", host, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the kubelet's swap of ..data was not seen", host)
		}
	}
}
