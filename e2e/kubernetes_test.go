package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretMount copies files into a directory laid out as the kubelet mounts
// a Secret with defaultMode 0400 and an fsGroup: files 0440 in a
// timestamped directory behind "..data", one symlink per key, and the
// whole read-only.
func secretMount(t *testing.T, files []string) string {
	t.Helper()
	dir := t.TempDir()
	ts := "..2026_12_03_11_00_00.000000001"
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if err := os.WriteFile(filepath.Join(dir, ts, name), data, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, ts), dir} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(d, 0o755) })
	}
	return dir
}

// TestReplicasShareKeysFromAReadOnlyMount: two replicas, each with its own
// writable state dir, take the keys from one read-only Secret mount made by
// "keyhole keys init": a token minted with those keys works on both, both
// present the same CA, and nothing is written into the mount.
func TestReplicasShareKeysFromAReadOnlyMount(t *testing.T) {
	made := filepath.Join(t.TempDir(), "keys")
	out, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + made}, "keys", "init")
	if code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	files := strings.Fields(out)
	if len(files) != 6 {
		t.Fatalf("keys init printed %d paths, want 6: %q", len(files), out)
	}
	mount := secretMount(t, files)
	var before bytes.Buffer
	_ = filepath.Walk(mount, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			before.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})

	env := []string{"BILLING_TOKEN=" + billingToken, "CI_TOKEN=" + ciToken, "KEYHOLE_KEYS_DIR=" + mount}
	a := newWorld(t, agentRules, env...)
	b := newWorld(t, agentRules, env...)
	tok, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + made, "KEYHOLE_RULES=" + a.k.Rules},
		"token", "mint", "--agent", "billing", "--ttl", "10m", "--secrets", "STRIPE")
	if code != 0 {
		t.Fatalf("token mint: exit %d: %s", code, stderr)
	}
	tok = strings.TrimSpace(tok)
	ca, err := os.ReadFile(filepath.Join(made, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]*world{"A": a, "B": b} {
		if got, err := os.ReadFile(w.k.CAFile); err != nil || !bytes.Equal(got, ca) {
			t.Errorf("replica %s does not present the CA of the keys dir", name)
		}
		resp := goClient{}.Do(t, w.k, withProxyAuth(stripeReq, "billing", tok))
		if resp.Status != 200 {
			t.Errorf("replica %s: a token minted with the shared keys got %d, want 200: %s", name, resp.Status, resp.Body)
		} else if w.stripe.Last(t).Header.Get("Authorization") != "Bearer "+stripeValue {
			t.Errorf("replica %s: the upstream did not get the secret", name)
		}
	}
	var after bytes.Buffer
	_ = filepath.Walk(mount, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			after.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	if after.String() != before.String() {
		t.Errorf("the keys mount changed:\nbefore:\n%s\nafter:\n%s", before.String(), after.String())
	}

	t.Run("keys init refuses KEYHOLE_STORE_KEY", func(t *testing.T) {
		_, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + t.TempDir(), "KEYHOLE_STORE_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "keys", "init")
		if code == 0 || !strings.Contains(stderr, "KEYHOLE_STORE_KEY is set") {
			t.Fatalf("got exit %d, stderr %q; want a refusal naming KEYHOLE_STORE_KEY", code, stderr)
		}
	})
	t.Run("a key missing from the mount stops serve", func(t *testing.T) {
		var some []string
		for _, f := range files {
			if filepath.Base(f) != "token-key" {
				some = append(some, f)
			}
		}
		partial := secretMount(t, some)
		state := filepath.Join(t.TempDir(), "state")
		_, stderr, code := runKeyholeFor(t, 20*time.Second, []string{"KEYHOLE_KEYS_DIR=" + partial, "KEYHOLE_STATE_DIR=" + state, "KEYHOLE_RULES=" + a.k.Rules},
			"serve", "--listen", "127.0.0.1:0")
		if code == 0 || !strings.Contains(stderr, "token-key is missing") {
			t.Fatalf("got exit %d, stderr %q; want a failure naming token-key", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(state, "token-key")); err == nil {
			t.Error("serve made a token key of its own")
		}
	})
}

// kubeletSwap points dir's "..data" at a new timestamped directory holding
// name with data, the way the kubelet updates a mounted ConfigMap: the new
// directory is written first, a "..data_tmp" symlink to it is renamed over
// "..data" (the one atomic step), the previous directory is removed, and
// name is a symlink to "..data/name" (made once, by renaming a symlink over
// whatever name was).
func kubeletSwap(t *testing.T, dir, ts, prev, name string, data []byte) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		link := filepath.Join(dir, "."+name+".link")
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if prev != "" {
		if err := os.RemoveAll(filepath.Join(dir, prev)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRulesFromAConfigMapReload: keyhole serve's rules file sits in a
// directory laid out like a mounted ConfigMap; an update by the kubelet's
// symlink swap is in force for the next request, within about a second.
func TestRulesFromAConfigMapReload(t *testing.T) {
	w := newWorld(t, "")
	dir, name := filepath.Dir(w.k.Rules), filepath.Base(w.k.Rules)
	orig, err := os.ReadFile(w.k.Rules)
	if err != nil {
		t.Fatal(err)
	}
	kubeletSwap(t, dir, "..2026_12_03_11_00_00.000000001", "", name, orig)
	v2 := request{URL: "https://api.stripe.test/v2/charges", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}
	resp := goClient{}.Do(t, w.k, v2)
	assertRefusal(t, resp, 403, "path_not_allowed", "STRIPE")

	updated := bytes.Replace(orig, []byte(`paths: ["/v1/*"]`), []byte(`paths: ["/v1/*", "/v2/*"]`), 1)
	if bytes.Equal(updated, orig) {
		t.Fatal("the rules have no STRIPE paths line to change")
	}
	start := time.Now()
	kubeletSwap(t, dir, "..2026_12_03_11_01_00.000000002", "..2026_12_03_11_00_00.000000001", name, updated)
	for {
		resp := goClient{}.Do(t, w.k, v2)
		if resp.Status == 200 {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the ConfigMap's update was not in force after 15s: %d %s", resp.Status, resp.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the swapped rules were in force %v after the swap", time.Since(start).Round(time.Millisecond))
	if w.stripe.Last(t).Header.Get("Authorization") != "Bearer "+stripeValue {
		t.Error("the upstream did not get the secret under the swapped rules")
	}
	w.k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "reload" && r["ok"] == true })
}
