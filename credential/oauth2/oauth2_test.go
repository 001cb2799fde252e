package oauth2

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/rules"
)

const clientSecret = "oauth-unit-SECRET-0123456789"

func TestFetch(t *testing.T) {
	tests := []struct {
		name, body, ctype string
		status            int
		want, wantErr     string
		lifetime          time.Duration
	}{
		{"ok", `{"access_token":"tok-1","token_type":"Bearer","expires_in":120}`, "application/json", 200, "tok-1", "", 120 * time.Second},
		{"no expires_in", `{"access_token":"tok-2","token_type":"Bearer"}`, "application/json", 200, "tok-2", "", DefaultLifetime},
		{"401", `{"error":"invalid_client","error_description":"` + clientSecret + `"}`, "application/json", 401, "", "token endpoint returned 401 (invalid_client)", 0},
		{"500 html", `<html>` + clientSecret + `</html>`, "text/html", 500, "", "token endpoint returned 500", 0},
		{"non-JSON 200", `<html>login</html>`, "application/json", 200, "", "token endpoint returned an unparsable token response", 0},
		{"no token", `{"token_type":"Bearer"}`, "application/json", 200, "", "token endpoint returned an unparsable token response", 0},
		{"token with a newline", `{"access_token":"a\nb","expires_in":60}`, "application/json", 200, "", "token endpoint returned an access token that cannot be sent in a header", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, sec, ok := r.BasicAuth(); !ok || sec != clientSecret || r.PostFormValue("client_secret") != "" {
					t.Error("the client did not authenticate with Basic only")
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			t.Setenv("OAUTH_UNIT_ID", "client")
			t.Setenv("OAUTH_UNIT_SECRET", clientSecret)
			set, err := rules.LoadData(filepath.Join(t.TempDir(), "k.yaml"), []byte(`secrets:
  G:
    kind: oauth2
    token_url: `+srv.URL+`/token
    client_id: env:OAUTH_UNIT_ID
    client_secret: env:OAUTH_UNIT_SECRET
    hosts: [graph.example.com]
`))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			tok, exp, err := Fetch(context.Background(), srv.Client(), set.Secrets["G"].OAuth2, now)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), clientSecret) {
					t.Fatal("the error holds the client secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tok.Equal(tc.want) {
				t.Error("got another token")
			}
			if d := exp.Sub(now); d < tc.lifetime-5*time.Second || d > tc.lifetime+5*time.Second {
				t.Errorf("expires in %v, want about %v", d, tc.lifetime)
			}
		})
	}
}
