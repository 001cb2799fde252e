package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/secret"
)

const testValue = "sk_store_test_value_0123456789"

func openTest(t *testing.T, dir, key string) *File {
	t.Helper()
	f, err := Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := openTest(t, dir, "")
	if _, err := f.Get(ctx, "A"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: got %v, want ErrNotFound", err)
	}
	if err := f.Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue)}); err != nil {
		t.Fatal(err)
	}
	first, err := f.Get(ctx, "A")
	if err != nil || !first.Value.Equal(testValue) || first.Origin != OriginSet {
		t.Fatalf("got %v origin %q, want the value with origin set", err, first.Origin)
	}
	time.Sleep(10 * time.Millisecond) // so Updated differs from Created
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := f.Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue + "2"), Origin: OriginCaptured, Owner: "bot", Expires: exp,
		Policy: &Policy{Hosts: []string{"api.example.com"}, Methods: []string{"GET"}}}); err != nil {
		t.Fatal(err)
	}
	again := openTest(t, dir, "") // another process
	e, err := again.Get(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Value.Equal(testValue+"2") || e.Origin != OriginCaptured || e.Owner != "bot" || !e.Expires.Equal(exp) {
		t.Errorf("got origin %q owner %q expires %v", e.Origin, e.Owner, e.Expires)
	}
	if e.Policy == nil || fmt.Sprint(e.Policy.Hosts, e.Policy.Methods) != "[api.example.com] [GET]" {
		t.Errorf("got policy %+v, want hosts [api.example.com] methods [GET]", e.Policy)
	}
	if !e.Created.Equal(first.Created) || !e.Updated.After(e.Created) {
		t.Errorf("got created %v updated %v, want the first created and a later update", e.Created, e.Updated)
	}
	list, err := again.List(ctx)
	if err != nil || len(list) != 1 || len(list[0].Fingerprint) != 16 || list[0].Policy == nil {
		t.Fatalf("got %v, %v", list, err)
	}
	for _, name := range []string{DataFile, KeyFile, FingerprintKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got %v, %v; want mode 0600", name, fi.Mode(), err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, DataFile))
	if strings.Contains(string(raw), testValue) {
		t.Error("the store file holds the value in the clear")
	}
	if err := again.Delete(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, "A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: got %v, want ErrNotFound", err)
	}
	if err := f.Delete(ctx, "A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: got %v, want ErrNotFound", err)
	}
}

func TestFileExpired(t *testing.T) {
	ctx := context.Background()
	f := openTest(t, t.TempDir(), "")
	if err := f.Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue), Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, "A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound for an expired entry", err)
	}
}

func TestFileRefuses(t *testing.T) {
	ctx := context.Background()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	other := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	tests := []struct {
		name    string
		mangle  func([]byte) []byte
		key     string
		wantErr string
	}{
		{"tampered", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }, key, "fails authentication"},
		{"truncated body", func(b []byte) []byte { return b[:len(b)-5] }, key, "fails authentication"},
		{"truncated header", func(b []byte) []byte { return b[:20] }, key, "truncated"},
		{"truncated magic", func(b []byte) []byte { return b[:4] }, key, "truncated"},
		{"not a store", func([]byte) []byte { return []byte("{\"entries\": []}") }, key, "not a keyhole store"},
		{"wrong key", func(b []byte) []byte { return b }, other, "sealed under a different key than KEYHOLE_STORE_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := openTest(t, dir, key).Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue)}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, DataFile)
			raw, _ := os.ReadFile(path)
			if err := os.WriteFile(path, tc.mangle(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			f := openTest(t, dir, tc.key)
			_, err := f.Get(ctx, "A")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s and saying %q", err, path, tc.wantErr)
			}
			if strings.Contains(err.Error(), testValue) || strings.Contains(err.Error(), tc.key) {
				t.Error("the error holds the value or the key")
			}
			if err := f.Put(ctx, Entry{Name: "B", Value: secret.FromString(testValue)}); err == nil {
				t.Error("Put over a refused file succeeded; it would drop the entries")
			}
		})
	}
}

func TestBadKey(t *testing.T) {
	for _, k := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		_, err := Open(t.TempDir(), k)
		if err == nil || !strings.Contains(err.Error(), KeyEnv) || strings.Contains(err.Error(), k) {
			t.Errorf("got %v, want an error naming %s and not quoting the key", err, KeyEnv)
		}
	}
}

// TestConcurrentPuts writes from 20 stores on one directory at once, as 20
// processes would: no update may be lost.
func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openTest(t, dir, "")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := Open(dir, "")
			if err == nil {
				err = f.Put(ctx, Entry{Name: fmt.Sprintf("S%d", i), Value: secret.FromString(fmt.Sprintf("%s-%d", testValue, i))})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := openTest(t, dir, "").List(ctx)
	if err != nil || len(list) != 20 {
		t.Fatalf("got %d entries (%v), want 20", len(list), err)
	}
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	f := openTest(t, dir, "")
	f.PollInterval = 10 * time.Millisecond
	ch := f.Watch(ctx)
	if err := openTest(t, dir, "").Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen")
	}
}

func TestCheckEntry(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"bad name", Entry{Name: "1A", Value: secret.FromString(testValue)}},
		{"long name", Entry{Name: strings.Repeat("A", MaxNameLen+1), Value: secret.FromString(testValue)}},
		{"empty", Entry{Name: "A"}},
		{"newline", Entry{Name: "A", Value: secret.FromString("a\nb")}},
		{"large", Entry{Name: "A", Value: secret.FromString(strings.Repeat("a", MaxValueSize+1))}},
		{"origin", Entry{Name: "A", Value: secret.FromString(testValue), Origin: "stolen"}},
		{"policy without hosts", Entry{Name: "A", Value: secret.FromString(testValue), Policy: &Policy{}}},
	}
	f := openTest(t, t.TempDir(), "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.Put(context.Background(), tc.e); err == nil {
				t.Error("got no error")
			} else if strings.Contains(err.Error(), "a\nb") {
				t.Error("the error holds the value")
			}
		})
	}
}
