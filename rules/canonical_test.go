package rules

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// canonical re-encodes a compiled Set as a rules file, in a fixed order and
// spelling, for golden files and round-trip tests. It holds no value.
func canonical(t testing.TB, s *Set) string {
	t.Helper()
	type secretDoc struct {
		Source         string   `yaml:"source"`
		Hosts          []string `yaml:"hosts"`
		Headers        []string `yaml:"headers,omitempty"`
		Methods        []string `yaml:"methods,omitempty"`
		Paths          []string `yaml:"paths,omitempty"`
		AllowPlaintext bool     `yaml:"allow_plaintext,omitempty"`
		Env            string   `yaml:"env,omitempty"`
	}
	type agentDoc struct {
		Token   string   `yaml:"token"`
		Secrets []string `yaml:"secrets"`
	}
	type egressDoc struct {
		Default      string   `yaml:"default"`
		Allow        []string `yaml:"allow"`
		Deny         []string `yaml:"deny"`
		BlockPrivate bool     `yaml:"block_private"`
	}
	type vaultDoc struct {
		Address   string         `yaml:"address,omitempty"`
		Namespace string         `yaml:"namespace,omitempty"`
		CAFile    string         `yaml:"ca_file,omitempty"`
		Auth      map[string]any `yaml:"auth"`
	}
	type doc struct {
		Secrets map[string]secretDoc `yaml:"secrets"`
		Agents  map[string]agentDoc  `yaml:"agents,omitempty"`
		Egress  egressDoc            `yaml:"egress"`
		Resolve map[string]string    `yaml:"resolve"`
		Vault   *vaultDoc            `yaml:"vault,omitempty"`
	}
	d := doc{
		Secrets: map[string]secretDoc{},
		Resolve: map[string]string{},
		Egress: egressDoc{
			Default:      "allow",
			Allow:        patterns(s.Egress.Allow),
			Deny:         patterns(s.Egress.Deny),
			BlockPrivate: !s.Egress.AllowPrivate,
		},
	}
	if s.Egress.DefaultDeny {
		d.Egress.Default = "deny"
	}
	for name, sec := range s.Secrets {
		sd := secretDoc{
			Source:         sec.Source.String(),
			Hosts:          sec.HostList(),
			Headers:        sec.Headers,
			Methods:        sec.Methods,
			AllowPlaintext: sec.AllowPlaintext,
		}
		for _, g := range sec.Paths {
			sd.Paths = append(sd.Paths, g.String())
		}
		if sec.Env != name {
			sd.Env = sec.Env
		}
		d.Secrets[name] = sd
	}
	if s.Agents != nil {
		d.Agents = map[string]agentDoc{}
		for name, a := range s.Agents {
			d.Agents[name] = agentDoc{Token: a.Token.String(), Secrets: a.Secrets}
		}
	}
	if v := s.Vault; v != nil {
		d.Vault = &vaultDoc{Address: v.Address, Namespace: v.Namespace, CAFile: v.CAFile, Auth: map[string]any{}}
		if v.Token != nil {
			d.Vault.Auth["token"] = v.Token.String()
		} else {
			d.Vault.Auth["approle"] = map[string]string{"role_id": v.RoleID.String(), "secret_id": v.SecretID.String()}
		}
	}
	for _, p := range s.Resolve {
		key := p.Host
		if p.Port != 0 {
			key = net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
		}
		val := p.Addr.String()
		if p.AddrPort != 0 {
			val = net.JoinHostPort(val, strconv.Itoa(p.AddrPort))
		}
		d.Resolve[key] = val
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b.String()
}

func patterns(ps []HostPattern) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
