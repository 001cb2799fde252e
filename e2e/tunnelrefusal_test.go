package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// connectRefusal sends CONNECT target (with extra header lines) and
// returns the refusal the agent gets: on the CONNECT response itself, or,
// when keyhole opens the tunnel, on a GET sent inside it (inTunnel). The
// refusal inside must carry the same reason in its header, and its audit
// record.
func connectRefusal(t *testing.T, k *keyhole, target string, header ...string) (status int, reason string, inTunnel bool) {
	t.Helper()
	conn, br, resp, onConnect := sendConnect(t, k, target, header...)
	defer conn.Close()
	if resp.StatusCode != http.StatusOK {
		r, _ := onConnect["reason"].(string)
		return resp.StatusCode, r, false
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	host = strings.Trim(host, "[]")
	tc := tls.Client(&bufferedConn{Conn: conn, r: br}, &tls.Config{ServerName: host, RootCAs: keyholeRoots(t, k)})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake inside the refusing tunnel to %s: %v", target, err)
	}
	fmt.Fprintf(tc, "GET /probe HTTP/1.1\r\nHost: %s\r\n\r\n", target)
	inner, err := http.ReadResponse(bufio.NewReader(tc), &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("request inside the refusing tunnel to %s: %v", target, err)
	}
	defer inner.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(inner.Body).Decode(&m); err != nil {
		t.Fatalf("refusal inside the tunnel to %s is not JSON: %v", target, err)
	}
	reason, _ = m["reason"].(string)
	if got := inner.Header.Get("X-Keyhole-Reason"); got != reason {
		t.Errorf("X-Keyhole-Reason: got %q, want %q", got, reason)
	}
	id := inner.Header.Get("X-Keyhole-Request-Id")
	if id == "" || m["request_id"] != id {
		t.Errorf("request id: header %q, body %v, want the same", id, m["request_id"])
	}
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["request_id"] == id })
	if rec["decision"] != "deny" || rec["reason"] != reason || rec["method"] != "GET" || rec["path"] != "/probe" {
		t.Errorf("audit record: got %v %v %v %v, want deny %s GET /probe", rec["decision"], rec["reason"], rec["method"], rec["path"], reason)
	}
	return inner.StatusCode, reason, true
}

// sendConnect sends CONNECT target (with extra header lines) on a new
// connection to keyhole and reads the response, with its JSON body when it
// is not 200. The caller closes the connection.
func sendConnect(t *testing.T, k *keyhole, target string, header ...string) (net.Conn, *bufio.Reader, *http.Response, map[string]any) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", k.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, strings.Join(header, ""))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	var m map[string]any
	if resp.StatusCode != http.StatusOK {
		// Go's own 400 for a malformed request line is plain text.
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
	}
	return conn, br, resp, m
}

// keyholeRoots returns a pool holding keyhole's CA.
func keyholeRoots(t *testing.T, k *keyhole) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	return roots
}
