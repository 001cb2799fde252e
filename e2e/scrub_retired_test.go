package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Values of a file: source rotated under an upstream that stores them.
const (
	retiredOld = "retired-SECRET-old-6666ffff"
	retiredNew = "retired-SECRET-new-7777abab"
)

func init() {
	allSecretValues = append(allSecretValues, retiredOld, retiredNew)
}

// TestScrubsRetiredValue rotates a file: source while an upstream keeps
// the old value: when the upstream returns it later, to a request without
// a placeholder, the agent gets the placeholder, not the old value.
func TestScrubsRetiredValue(t *testing.T) {
	var mu sync.Mutex
	var stored, last string
	up := newUpstream(t, []string{"api.store.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch r.URL.Path {
		case "/store":
			stored = key
			io.WriteString(w, "stored")
		case "/seen":
			last = key
			io.WriteString(w, "seen")
		case "/stored":
			io.WriteString(w, "you stored: "+stored)
		}
	}))
	secretFile := filepath.Join(t.TempDir(), "store-secret")
	writeFile(t, secretFile, retiredOld+"\n")
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STORE:
    source: file:%s
    hosts: [api.store.test]
resolve:
  api.store.test: %s
`, secretFile, up.Addr()))
	c := k.GoClient(t, "", "")
	get := func(path string, placeholder bool) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://api.store.test"+path, nil)
		if placeholder {
			req.Header.Set("Authorization", "Bearer <<STORE>>")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	get("/store", true)
	writeFile(t, secretFile, retiredNew+"\n")
	deadline := time.Now().Add(15 * time.Second)
	for {
		get("/seen", true)
		mu.Lock()
		rotated := last == retiredNew
		mu.Unlock()
		if rotated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upstream did not get the rotated value within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := get("/stored", false)
	if body != "you stored: <<STORE>>" {
		t.Errorf("got %q, want the retired value scrubbed to its placeholder",
			strings.ReplaceAll(body, retiredOld, "[old value]"))
	}
}
