package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyhole.yaml")
	src := filepath.Join(dir, "key")
	write := func(p, s string) {
		t.Helper()
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	good := "secrets:\n  K:\n    source: file:key\n    hosts: [a.example]\n"
	write(src, "value-one-123456\n")
	write(path, good)
	set, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loads := make(chan *Set, 10)
	errs := make(chan error, 10)
	w := &Watcher{Path: path, Interval: 10 * time.Millisecond,
		OnLoad: func(s *Set) { loads <- s }, OnError: func(e error) { errs <- e }}
	reload := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, set, reload); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(t *testing.T, what string) *Set {
		t.Helper()
		select {
		case s := <-loads:
			return s
		case err := <-errs:
			t.Fatalf("%s: unexpected error %v", what, err)
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no reload", what)
		}
		return nil
	}
	value := func(s *Set) string {
		v, err := s.Secrets["K"].Value()
		if err != nil {
			return "unavailable"
		}
		return v.Reveal()
	}

	t.Run("source rotation", func(t *testing.T) {
		write(src, "value-two-654321\n")
		if got := value(wait(t, "rotation")); got != "value-two-654321" {
			t.Errorf("got %q after rotation", got)
		}
	})
	t.Run("broken file reported once, old set kept", func(t *testing.T) {
		write(path, "secrets:\n  K:\n    hosts: 1\n")
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), path+":3:") {
				t.Errorf("error lacks FILE:LINE: %v", err)
			}
		case <-loads:
			t.Fatal("a broken file was loaded")
		case <-time.After(2 * time.Second):
			t.Fatal("no error reported")
		}
		select {
		case err := <-errs:
			t.Fatalf("reported twice: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	})
	t.Run("fixed file loads", func(t *testing.T) {
		write(path, good)
		wait(t, "fix")
	})
	t.Run("reload on request", func(t *testing.T) {
		reload <- struct{}{}
		wait(t, "SIGHUP")
	})
	t.Run("a source that appears", func(t *testing.T) {
		os.Remove(src)
		if got := value(wait(t, "removal")); got != "unavailable" {
			t.Errorf("got %q after the source was removed", got)
		}
		write(src, "value-three-999999\n")
		if got := value(wait(t, "return")); got != "value-three-999999" {
			t.Errorf("got %q after the source came back", got)
		}
	})
}

// TestWatcherWaitsForAFileToSettle writes a rules file in two steps, the
// first of which is valid YAML meaning something else; only the whole file
// may load.
func TestWatcherWaitsForAFileToSettle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyhole.yaml")
	first := "secrets:\n  K:\n    source: env:K_VALUE\n    hosts: [a.example]\n"
	os.WriteFile(path, []byte(first), 0o600)
	set, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loads := make(chan *Set, 10)
	w := &Watcher{Path: path, Interval: 40 * time.Millisecond, OnLoad: func(s *Set) { loads <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, set, nil); close(done) }()
	defer func() { cancel(); <-done }()

	whole := first + "egress:\n  default: deny\n"
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(whole[len(first) : len(first)+8]) // "egress:\n": valid, means nothing new
	time.Sleep(25 * time.Millisecond)
	f.WriteString(whole[len(first)+8:])
	f.Close()
	select {
	case s := <-loads:
		if !s.Egress.DefaultDeny {
			t.Fatal("the watcher loaded the file half-written")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no reload")
	}
}
