package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"keyhole/certs"
	"keyhole/proxy"
	"keyhole/rules"
	"keyhole/tokens"
)

// bundleFile is the trust bundle `keyhole env` writes to the state dir: the
// system's roots plus keyhole's CA, for tools that take one file.
const bundleFile = "ca-bundle.pem"

// wgetrcFile is the wget startup file `keyhole env` writes next to the
// bundle: wget ignores SSL_CERT_FILE but reads the file WGETRC names.
const wgetrcFile = "wgetrc"

// envCommand prints the export lines an agent's shell needs: the proxy, the
// CA for every common client, and one placeholder variable per secret.
func envCommand(args []string, stdout, stderr io.Writer) error {
	var agent, proxyURL, caDir, output string
	var ttl time.Duration
	s, rest, err := parseSettings("env", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&agent, "agent", "", "the agent whose credentials and secrets to export")
		fs.StringVar(&proxyURL, "proxy", "", "the proxy URL agents use (default: http:// + KEYHOLE_LISTEN)")
		fs.DurationVar(&ttl, "ttl", 0, "mint a token with this lifetime instead of exporting the agent's static token")
		fs.StringVar(&output, "output", "", "write the exports to this file (mode 0600) instead of stdout")
		fs.StringVar(&caDir, "ca-dir", "", "write ca.pem and "+bundleFile+" here and point the exports at them (default: the state dir); for a directory agents can read, unlike the state dir")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("env: unexpected argument %q", rest[0])
	}
	loader, file := sourceLoader(s, false, nil)
	_, done, err := commandLoaderStore(context.Background(), s, loader, file)
	if err != nil {
		return fmt.Errorf("env: %w", err)
	}
	defer done()
	set, err := loader.Load(context.Background(), s.Rules, nil)
	if err != nil {
		printErrors(stderr, err)
		return exitError{}
	}
	u, err := agentProxyURL(proxyURL, s.Proxy.Listen)
	if err != nil {
		return err
	}
	secrets, err := envSecrets(set, agent)
	if err != nil {
		return err
	}
	if agent != "" {
		token, err := agentToken(s, set.Agents[agent], ttl)
		if err != nil {
			return err
		}
		u.User = url.UserPassword(agent, token)
	}
	authority, err := certs.LoadOrCreate(s.StateDir, certs.Options{})
	if err != nil {
		return err
	}
	if caDir == "" {
		caDir = s.StateDir
	}
	caFile, bundle, wgetrc, err := writeTrust(authority, caDir)
	if err != nil {
		return err
	}

	var b strings.Builder
	export := func(name, value string) { fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(value)) }
	b.WriteString("# keyhole: route this shell's HTTP(S) through the proxy and trust its CA\n")
	for _, name := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} {
		export(name, u.String())
	}
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		export(name, "localhost,127.0.0.1,::1")
	}
	export("SSL_CERT_FILE", bundle)       // OpenSSL, Go on Linux, Python's ssl, httpx
	export(certs.TrustBundleEnv, bundle)  // tells the next keyhole env SSL_CERT_FILE is its own
	export("REQUESTS_CA_BUNDLE", bundle)  // Python requests
	export("CURL_CA_BUNDLE", bundle)      // curl
	export("GIT_SSL_CAINFO", bundle)      // git
	export("PIP_CERT", bundle)            // pip
	export("NPM_CONFIG_CAFILE", bundle)   // npm
	export("NODE_EXTRA_CA_CERTS", caFile) // Node.js adds it to its own roots
	export("NODE_USE_ENV_PROXY", "1")     // Node.js 22.21+ and 24+: fetch and https honour HTTPS_PROXY
	export("WGETRC", wgetrc)              // wget: ca_certificate (it ignores SSL_CERT_FILE)
	export("AWS_CA_BUNDLE", bundle)       // AWS SDKs and the aws CLI
	export("KEYHOLE_API", "https://"+proxy.APIHost)
	if len(secrets) > 0 {
		b.WriteString("# placeholders: keyhole swaps each for its secret where the rules allow\n")
	}
	for _, sec := range secrets {
		if strings.Contains(b.String(), "export "+sec.Env+"=") {
			return fmt.Errorf("env: secret %s would export %s, which keyhole env already sets; give the secret another env: name", sec.Name, sec.Env)
		}
	}
	for _, sec := range secrets {
		export(sec.Env, sec.Placeholder())
	}
	kindExports(&b, secrets, export)
	if output != "" {
		if err := os.WriteFile(output, []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("env: %w", err)
		}
		return nil
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// writeTrust writes the CA certificate, the trust bundle and a wgetrc
// that trusts the bundle into dir and returns their paths.
func writeTrust(a *certs.Authority, dir string) (caFile, bundle, wgetrc string, err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", fmt.Errorf("env: %w", err)
	}
	caFile, bundle, wgetrc = filepath.Join(dir, "ca.pem"), filepath.Join(dir, bundleFile), filepath.Join(dir, wgetrcFile)
	if err := os.WriteFile(caFile, a.CertPEM(), 0o644); err != nil {
		return "", "", "", fmt.Errorf("env: %w", err)
	}
	if err := a.WriteTrustBundle(bundle); err != nil {
		return "", "", "", err
	}
	// wget reads /etc/wgetrc, then WGETRC instead of ~/.wgetrc.
	rc := "# written by keyhole env: trust keyhole's CA and the system's roots\nca_certificate = " + bundle + "\n"
	if err := os.WriteFile(wgetrc, []byte(rc), 0o644); err != nil {
		return "", "", "", fmt.Errorf("env: %w", err)
	}
	return caFile, bundle, wgetrc, nil
}

// agentProxyURL is the proxy URL agents use: the --proxy flag, else the
// listen address (a wildcard address becomes 127.0.0.1).
func agentProxyURL(flagValue, listen string) (*url.URL, error) {
	if flagValue != "" {
		u, err := url.Parse(flagValue)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("env: --proxy %q is not an http:// URL", flagValue)
		}
		return u, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("env: KEYHOLE_LISTEN %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}

// envSecrets returns the secrets agent may use, sorted by name: every
// secret when the rules have no agents section.
func envSecrets(set *rules.Set, agent string) ([]*rules.Secret, error) {
	var names []string
	switch {
	case agent == "" && set.HasAgents():
		return nil, fmt.Errorf("env: %s has agents; pass --agent NAME", set.File)
	case agent == "":
		names = set.SecretNames()
	default:
		a := set.Agents[agent]
		if a == nil {
			return nil, fmt.Errorf("env: %s has no agent %q", set.File, agent)
		}
		names = slices.Sorted(slices.Values(a.Secrets))
	}
	out := make([]*rules.Secret, 0, len(names))
	for _, n := range names {
		out = append(out, set.Secrets[n])
	}
	return out, nil
}

// agentToken returns the agent's static token, or a freshly minted one when
// ttl is set.
func agentToken(s settings, a *rules.Agent, ttl time.Duration) (string, error) {
	if ttl > 0 {
		key, err := tokens.LoadOrCreateKey(s.StateDir)
		if err != nil {
			return "", err
		}
		return mintRecorded(s, key, a.Name, "", tokens.Restriction{TTL: ttl}, time.Now())
	}
	v, err := a.TokenValue()
	if err != nil {
		return "", fmt.Errorf("env: agent %s: its token cannot be read: %w", a.Name, err)
	}
	return v.Reveal(), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
