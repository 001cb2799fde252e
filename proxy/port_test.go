package proxy

import (
	"path/filepath"
	"strings"
	"testing"

	"keyhole/inject"
	"keyhole/rules"
)

// TestEgressRefusalNamesThePort checks that a destination refused for its
// port alone says so, and what would allow it, under either default.
func TestEgressRefusalNamesThePort(t *testing.T) {
	t.Setenv("PORT_TEST_KEY", "port-test-value-0123")
	for _, def := range []string{"allow", "deny"} {
		set, err := rules.LoadData(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(`
secrets:
  K:
    source: env:PORT_TEST_KEY
    hosts: [api.example.test]
egress:
  default: `+def+`
  allow: [open.example.test]
  deny: [blocked.example.test]
`))
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, host string
			port       int
			want       string // "" for allowed
		}{
			{"secret host, its port", "api.example.test", 443, ""},
			{"secret host, other port", "api.example.test", 8443, "port 8443 of api.example.test is not an allowed destination: only port 443 is open unless a rule names the port; add api.example.test:8443 to a secret's hosts or to egress.allow"},
			{"allow entry, other port", "open.example.test", 9000, "add open.example.test:9000 to"},
			{"deny list", "blocked.example.test", 443, "is on the egress deny list"},
			// The host is refused on its own port too: the port is not the reason.
			{"deny list, other port", "blocked.example.test", 8443, "no secret or egress.allow entry names it"},
		}
		if def == "deny" {
			tests = append(tests, struct {
				name, host string
				port       int
				want       string
			}{"unnamed host, other port", "other.example.test", 8443, "no secret or egress.allow entry names it"})
		}
		for _, tc := range tests {
			t.Run(def+"/"+tc.name, func(t *testing.T) {
				ref := checkEgress(set, inject.Target{Scheme: "https", Host: tc.host, Port: tc.port})
				switch {
				case tc.want == "" && ref != nil:
					t.Fatalf("got refusal %q, want allowed", ref.Message)
				case tc.want == "":
				case ref == nil:
					t.Fatalf("got allowed, want %q", tc.want)
				case ref.Reason != inject.EgressDenied || !strings.Contains(ref.Message, tc.want):
					t.Errorf("got %s %q, want egress_denied containing %q", ref.Reason, ref.Message, tc.want)
				}
			})
		}
	}
}
