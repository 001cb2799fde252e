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
		Source         string         `yaml:"source,omitempty"`
		Kind           string         `yaml:"kind,omitempty"`
		KindFields     map[string]any `yaml:",inline"`
		Hosts          []string       `yaml:"hosts"`
		Headers        []string       `yaml:"headers,omitempty"`
		Methods        []string       `yaml:"methods,omitempty"`
		Paths          []string       `yaml:"paths,omitempty"`
		AllowPlaintext bool           `yaml:"allow_plaintext,omitempty"`
		Env            string         `yaml:"env,omitempty"`
	}
	type budgetDoc struct {
		Secrets  []string `yaml:"secrets,omitempty,flow"`
		Requests int      `yaml:"requests"`
		Per      string   `yaml:"per"`
	}
	type agentDoc struct {
		Token   string        `yaml:"token"`
		Secrets []string      `yaml:"secrets"`
		Share   *SharePolicy  `yaml:"share,omitempty"`
		Intake  *IntakePolicy `yaml:"intake,omitempty"`
		Budgets []budgetDoc   `yaml:"budgets,omitempty"`
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
		Capture []captureDoc         `yaml:"capture,omitempty"`
		Handoff map[string]any       `yaml:"handoff,omitempty"`
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
			Kind:           canonicalKind(sec.Kind),
			KindFields:     kindDoc(sec),
			Hosts:          sec.HostList(),
			Headers:        sec.Headers,
			Methods:        sec.Methods,
			AllowPlaintext: sec.AllowPlaintext,
		}
		for _, g := range sec.Paths {
			sd.Paths = append(sd.Paths, g.String())
		}
		if sec.Source != nil {
			sd.Source = sec.Source.String()
		}
		if sec.Env != name {
			sd.Env = sec.Env
		}
		d.Secrets[name] = sd
	}
	if s.Agents != nil {
		d.Agents = map[string]agentDoc{}
		for name, a := range s.Agents {
			ad := agentDoc{Token: a.Token.String(), Secrets: a.Secrets, Share: a.Share, Intake: a.Intake}
			for _, b := range a.Budgets {
				ad.Budgets = append(ad.Budgets, budgetDoc{Secrets: b.Secrets, Requests: b.Requests, Per: FormatBudgetPer(b.Per)})
			}
			d.Agents[name] = ad
		}
	}
	d.Handoff = handoffDoc(s.Handoff)
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
	d.Capture = canonicalCaptures(s.Captures)
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

// canonicalKind is the kind as the canonical form writes it: static is the
// default, left out.
func canonicalKind(k CredentialKind) string {
	if k == KindStatic {
		return ""
	}
	return string(k)
}

// kindDoc renders the fields of a secret's kind.
func kindDoc(sec *Secret) map[string]any {
	m := map[string]any{}
	str := func(k string, s Source) {
		if s != nil {
			m[k] = s.String()
		}
	}
	switch {
	case sec.OAuth2 != nil:
		o := sec.OAuth2
		m["token_url"] = o.TokenURL
		str("client_id", o.ClientID)
		str("client_secret", o.ClientSecret)
		if o.Scopes != nil {
			m["scopes"] = o.Scopes
		}
	case sec.GitHubApp != nil:
		g := sec.GitHubApp
		m["app_id"], m["installation_id"], m["api_url"] = g.AppID, g.InstallationID, g.APIURL
		str("private_key", g.PrivateKey)
		if g.Repositories != nil {
			m["repositories"] = g.Repositories
		}
		if g.Permissions != nil {
			m["permissions"] = g.Permissions
		}
	case sec.AWS != nil:
		a := sec.AWS
		str("access_key_id", a.AccessKeyID)
		str("secret_access_key", a.SecretAccessKey)
		str("session_token", a.SessionToken)
		if r := a.AssumeRole; r != nil {
			ar := map[string]any{"role_arn": r.RoleARN, "duration": r.Duration.String(), "sts_endpoint": r.STSEndpoint}
			if r.Policy != nil {
				ar["policy"] = r.Policy.String()
			}
			m["assume_role"] = ar
		}
	}
	return m
}

// captureDoc is a capture rule as the canonical form writes it.
type captureDoc struct {
	Host    string   `yaml:"host"`
	Method  string   `yaml:"method,omitempty"`
	Path    string   `yaml:"path,omitempty"`
	JSON    string   `yaml:"json"`
	Name    string   `yaml:"name"`
	Hosts   []string `yaml:"hosts"`
	Headers []string `yaml:"headers,omitempty"`
	Methods []string `yaml:"methods,omitempty"`
	Paths   []string `yaml:"paths,omitempty"`
	TTL     string   `yaml:"ttl,omitempty"`
}

func canonicalCaptures(cs []*Capture) []captureDoc {
	var out []captureDoc
	for _, c := range cs {
		d := captureDoc{Host: c.Host.String(), Method: c.Method, JSON: c.JSONPath(), Name: c.Name,
			Hosts: c.Hosts, Headers: c.Headers, Methods: c.Methods, Paths: c.Paths}
		if c.Path != nil {
			d.Path = c.Path.String()
		}
		if c.TTL > 0 {
			d.TTL = c.TTL.String()
		}
		out = append(out, d)
	}
	return out
}

// handoffDoc renders the handoff section; nil for none.
func handoffDoc(h *Handoff) map[string]any {
	if h == nil {
		return nil
	}
	recipients := map[string]any{}
	for name, r := range h.Recipients {
		recipients[name] = map[string]string{"webhook": r.Webhook}
	}
	d := map[string]any{"listen": h.Listen, "base_url": h.BaseURL, "recipients": recipients, "max_ttl": h.MaxTTL.String()}
	if h.CertFile != "" {
		d["cert_file"], d["key_file"] = h.CertFile, h.KeyFile
	}
	return d
}
