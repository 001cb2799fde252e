package kubernetes_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keyhole/metrics"
	"keyhole/store"
)

// bin is keyhole, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyhole-manifests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "keyhole")
	if out, err := exec.Command("go", "build", "-o", bin, "keyhole/cmd/keyhole").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build keyhole: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var settingRE = regexp.MustCompile(`\[(KEYHOLE_[A-Z0-9_]+)\]`)

// keyholeFacts asks keyhole what it reads: every setting `keyhole serve -h`
// lists (the settings' one owner), and its admin handler.
func keyholeFacts(t *testing.T) keyhole {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-h")
	out, _ := cmd.CombinedOutput()               // -h exits non-zero
	known := map[string]bool{store.KeyEnv: true} // read by the store, not a flag
	for _, m := range settingRE.FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if !known["KEYHOLE_ADMIN_LISTEN"] || !known["KEYHOLE_RULES"] {
		t.Fatalf("keyhole serve -h lists no settings:\n%s", out)
	}
	return keyhole{settings: known, admin: metrics.New().Admin(func() error { return nil })}
}

func load(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := readDir(".")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestManifests(t *testing.T) {
	m, err := parse(load(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range check(m, keyholeFacts(t)) {
		t.Error(p)
	}
}

// TestRulesConfigMapChecks runs `keyhole check` on the ConfigMap's rules,
// as they are and with the commented handoff example turned on; the example
// must also listen on the container port the NetworkPolicy keeps from
// agents.
func TestRulesConfigMapChecks(t *testing.T) {
	m, err := parse(load(t))
	if err != nil {
		t.Fatal(err)
	}
	var cm configMap
	if err := m.one("ConfigMap", "keyhole-rules", &cm); err != nil {
		t.Fatal(err)
	}
	text := cm.Data["keyhole.yaml"]
	withHandoff := uncommentHandoff(text)
	if withHandoff == text {
		t.Fatal("the ConfigMap's rules have no commented handoff example")
	}
	for name, rulesText := range map[string]string{"as is": text, "handoff on": withHandoff} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyhole.yaml")
			if err := os.WriteFile(path, []byte(rulesText), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "check", path)
			cmd.Env = []string{"HOME=" + t.TempDir(), "KEYHOLE_STATE_DIR=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("keyhole check: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "1 secret") {
				t.Errorf("keyhole check: %s", out)
			}
			if name == "handoff on" && !strings.Contains(string(out), "handoff to 1 recipient") {
				t.Errorf("keyhole check did not see the handoff section: %s", out)
			}
		})
	}
	var d deployment
	if err := m.one("Deployment", "keyhole", &d); err != nil {
		t.Fatal(err)
	}
	var p problems
	checkHandoffListen(withHandoff, &d.Spec.Template.Spec.Containers[0], &p)
	for _, msg := range p {
		t.Error(msg)
	}
	if !strings.Contains(withHandoff, "listen:") {
		t.Error("the handoff example has no listen address")
	}
}

// uncommentHandoff turns on the rules' commented "# handoff:" block.
func uncommentHandoff(text string) string {
	lines := strings.Split(text, "\n")
	on := false
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		indent := l[:len(l)-len(trimmed)]
		switch {
		case trimmed == "# handoff:":
			on = true
		case on && strings.HasPrefix(trimmed, "#   "):
		default:
			on = false
			continue
		}
		lines[i] = indent + strings.TrimPrefix(trimmed, "# ")
	}
	return strings.Join(lines, "\n")
}

// TestBrokenManifestsFail: each mutation breaks one invariant, and check
// must name it.
func TestBrokenManifestsFail(t *testing.T) {
	k := keyholeFacts(t)
	good := load(t)
	tests := []struct {
		name, file, old, new, want string
	}{
		{"root", "deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"},
		{"uid 0", "deployment.yaml", "runAsUser: 65532", "runAsUser: 0", "runAsUser"},
		{"writable root fs", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"escalation", "deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation"},
		{"capabilities kept", "deployment.yaml", "drop: [ALL]", "drop: [NET_RAW]", "capabilities"},
		{"no seccomp", "deployment.yaml", "type: RuntimeDefault", "type: Unconfined", "seccomp"},
		{"two replicas", "deployment.yaml", "replicas: 3", "replicas: 2", "3 replicas"},
		{"no cpu request", "deployment.yaml", "cpu: 250m", "xcpu: 250m", "cpu request"},
		{"no anti-affinity", "deployment.yaml", "topologyKey: kubernetes.io/hostname\n                labelSelector", "topologyKey: topology.kubernetes.io/zone\n                labelSelector", "podAntiAffinity"},
		{"spread off", "deployment.yaml", "whenUnsatisfiable: DoNotSchedule", "whenUnsatisfiable: ScheduleAnyway", "topologySpread"},
		{"liveness path", "deployment.yaml", "path: /healthz\n              port: admin\n            periodSeconds: 10", "path: /health\n              port: admin\n            periodSeconds: 10", "/health"},
		{"readiness port", "deployment.yaml", "path: /readyz\n              port: admin", "path: /readyz\n              port: proxy", "readinessProbe's port"},
		{"admin port moved", "deployment.yaml", "value: 0.0.0.0:9090", "value: 0.0.0.0:9091", "KEYHOLE_ADMIN_LISTEN"},
		{"proxy on loopback", "deployment.yaml", "value: 0.0.0.0:8080", "value: 127.0.0.1:8080", "pod's address"},
		{"unknown setting", "deployment.yaml", "name: KEYHOLE_AUDIT_LOG", "name: KEYHOLE_AUDITLOG", "KEYHOLE_AUDITLOG is not a setting"},
		{"redis url in clear", "deployment.yaml", "- name: KEYHOLE_REDIS_URL\n              valueFrom:\n                secretKeyRef:\n                  name: keyhole-redis\n                  key: url", "- name: KEYHOLE_REDIS_URL\n              value: redis://:pw@redis:6379", "from a Secret"},
		{"rules file elsewhere", "deployment.yaml", "value: /etc/keyhole/rules/keyhole.yaml", "value: /etc/keyhole/keyhole.yaml", "KEYHOLE_RULES"},
		{"keys writable", "deployment.yaml", "mountPath: /etc/keyhole/keys\n              readOnly: true", "mountPath: /etc/keyhole/keys\n              readOnly: false", "KEYHOLE_KEYS_DIR"},
		{"a key missing", "deployment.yaml", "              - {key: token-key, path: token-key}\n", "", "statekeys.Names"},
		{"keys world-readable", "deployment.yaml", "secretName: keyhole-keys\n            defaultMode: 0400", "secretName: keyhole-keys\n            defaultMode: 0444", "defaultMode"},
		{"state read-only", "deployment.yaml", "mountPath: /var/lib/keyhole\n", "mountPath: /var/lib/keyhole\n              readOnly: true\n", "KEYHOLE_STATE_DIR"},
		{"tmp read-only", "deployment.yaml", "mountPath: /tmp\n", "mountPath: /tmp\n              readOnly: true\n", "/tmp must be a writable"},
		{"stray mount", "deployment.yaml", "mountPath: /etc/keyhole/secrets", "mountPath: /etc/keyhole/other", "reads nothing there"},
		{"selector off", "deployment.yaml", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: keyhole", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: keyhole-x", "selector"},
		{"service misses pods", "service.yaml", "  selector:\n    app.kubernetes.io/name: keyhole\n  ports:\n    - name: proxy", "  selector:\n    app.kubernetes.io/name: proxy\n  ports:\n    - name: proxy", "Service keyhole: the selector"},
		{"service wrong target", "service.yaml", "targetPort: proxy", "targetPort: 8081", "does not declare"},
		{"service exposes admin", "service.yaml", "targetPort: handoff", "targetPort: admin", "admin port"},
		{"pdb one", "pdb.yaml", "minAvailable: 2", "minAvailable: 1", "minAvailable 2"},
		{"pdb selector", "pdb.yaml", "    matchLabels:\n      app.kubernetes.io/name: keyhole", "    matchLabels:\n      app.kubernetes.io/name: keyhol", "PodDisruptionBudget keyhole: the selector"},
		{"policy misses keyhole", "networkpolicy.yaml", "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: keyhole", "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: keyhole-x", "NetworkPolicy keyhole: the podSelector"},
		{"agents reach every port", "networkpolicy.yaml", "              keyhole.dev/agent: \"true\"\n      ports:\n        - {port: proxy, protocol: TCP}", "              keyhole.dev/agent: \"true\"", "admits agent pods"},
		{"agents reach handoff", "networkpolicy.yaml", "        - {port: proxy, protocol: TCP}", "        - {port: proxy, protocol: TCP}\n        - {port: handoff, protocol: TCP}", "admits agent pods"},
		{"handoff open to agents", "networkpolicy.yaml", "              - {key: keyhole.dev/agent, operator: DoesNotExist}\n      ports:\n        - {port: handoff", "              - {key: other, operator: DoesNotExist}\n      ports:\n        - {port: handoff", "admits agent pods"},
		{"agent label", "networkpolicy.yaml", "              keyhole.dev/agent: \"true\"", "              keyhole.dev/agent: \"yes\"", "no ingress rule admits agent pods"},
		{"metadata endpoint", "networkpolicy.yaml", "              - 169.254.0.0/16\n", "", "169.254.0.0/16"},
		{"pod network", "networkpolicy.yaml", "              - 10.0.0.0/8\n", "", "10.0.0.0/8"},
		{"ipv6 private", "networkpolicy.yaml", "              - fc00::/7\n", "", "fc00::/7"},
		{"egress to all pods", "networkpolicy.yaml", "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: redis", "        - podSelector: {}", "pods other than DNS and Redis"},
		{"egress anywhere", "networkpolicy.yaml", "    # The cluster's DNS.\n    - to:", "    - {}\n    - to:", "allows every destination"},
		{"agents policy misses agents", "networkpolicy-agents.yaml", "      keyhole.dev/agent: \"true\"\n  policyTypes", "      keyhole.dev/agent: \"false\"\n  policyTypes", "keyhole-agents: the podSelector"},
		{"agents reach internet", "networkpolicy-agents.yaml", "  egress:\n", "  egress:\n    - to: [{ipBlock: {cidr: 0.0.0.0/0}}]\n", "besides keyhole's proxy"},
		{"agents reach admin", "networkpolicy-agents.yaml", "{port: 8080, protocol: TCP}", "{port: 9090, protocol: TCP}", "not only the proxy port"},
		{"agents' keyhole namespace", "networkpolicy-agents.yaml", "kubernetes.io/metadata.name: keyhole", "kubernetes.io/metadata.name: default", "besides keyhole's proxy"},
		{"agents egress only DNS", "networkpolicy-agents.yaml", "  policyTypes: [Egress]", "  policyTypes: [Ingress]", "Egress"},
		{"handoff on another port", "configmap.yaml", "    egress:\n", "    handoff:\n      listen: 0.0.0.0:9443\n    egress:\n", "handoff.listen"},
		{"handoff certificate not mounted", "configmap.yaml", "    egress:\n", "    handoff:\n      listen: 0.0.0.0:8443\n      base_url: https://keyhole.example.com\n      cert_file: /etc/keyhole/tls/tls.crt\n      key_file: /etc/keyhole/tls/tls.key\n      recipients:\n        alice: {webhook: https://hooks.example.com/alice}\n    egress:\n", "keyhole reads files in /etc/keyhole/tls"},
		{"namespace renamed", "namespace.yaml", "name: keyhole", "name: keyhole-prod", "kustomization.yaml's namespace"},
		{"manifest left out", "kustomization.yaml", "  - pdb.yaml\n", "", "resources"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := maps.Clone(good)
			text := string(files[tc.file])
			if !strings.Contains(text, tc.old) {
				t.Fatalf("%s does not contain %q: fix the mutation", tc.file, tc.old)
			}
			files[tc.file] = []byte(strings.Replace(text, tc.old, tc.new, 1))
			m, err := parse(files)
			if err != nil {
				t.Fatalf("the mutated manifests do not parse: %v", err)
			}
			ps := check(m, k)
			for _, p := range ps {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem names %q; got %q", tc.want, ps)
		})
	}
}
