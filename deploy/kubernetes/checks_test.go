package kubernetes_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"keyhole/rules"
	"keyhole/statekeys"
)

// Labels the checks are about.
var (
	agentLabels = map[string]string{"keyhole.dev/agent": "true"}
	redisLabels = map[string]string{"app.kubernetes.io/name": "redis"}
	dnsLabels   = map[string]string{"k8s-app": "kube-dns"}
)

// keyhole is what the checks know of keyhole itself, from keyhole.
type keyhole struct {
	settings map[string]bool // every setting keyhole reads, from `keyhole serve -h`
	admin    http.Handler    // the handler keyhole serves on its admin listener
}

// problems collects what is wrong, each naming its file and object.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// check returns every invariant m breaks.
func check(m *manifests, k keyhole) problems {
	var p problems
	var d deployment
	if err := m.one("Deployment", "keyhole", &d); err != nil {
		p.add("deployment.yaml: %v", err)
		return p
	}
	labels := d.Spec.Template.Metadata.Labels
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		p.add("Deployment keyhole: want one container, got %d", len(ps.Containers))
		return p
	}
	c := &ps.Containers[0]

	checkKustomization(m, &p)
	checkDeployment(&d, c, k, &p)
	checkMounts(m, &d, c, &p)
	checkServices(m, labels, c, &p)
	checkPDB(m, labels, *d.Spec.Replicas, &p)
	checkPolicies(m, labels, c, &p)
	return p
}

// checkKustomization: every manifest is a resource of kustomization.yaml.
func checkKustomization(m *manifests, p *problems) {
	var files []string
	for name := range m.files {
		if name != "kustomization.yaml" {
			files = append(files, name)
		}
	}
	sort.Strings(files)
	res := slices.Clone(m.kust.Resources)
	sort.Strings(res)
	if !slices.Equal(files, res) {
		p.add("kustomization.yaml: resources %v, want every manifest %v", res, files)
	}
	if m.kust.Namespace == "" {
		p.add("kustomization.yaml: no namespace")
	}
	for _, o := range m.objects {
		if o.Kind == "Namespace" && o.Metadata.Name != m.kust.Namespace {
			p.add("%s: Namespace %s, but kustomization.yaml's namespace is %s", o.file, o.Metadata.Name, m.kust.Namespace)
		}
	}
}

func checkDeployment(d *deployment, c *container, k keyhole, p *problems) {
	labels := d.Spec.Template.Metadata.Labels
	ps := d.Spec.Template.Spec
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		p.add("Deployment keyhole: want 3 replicas")
		d.Spec.Replicas = new(int)
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 || !d.Spec.Selector.matches(labels) {
		p.add("Deployment keyhole: the selector does not select the pod template's labels %v", labels)
	}
	// Non-root, whichever of the pod's and the container's contexts says it.
	pod, ctr := ps.SecurityContext, c.SecurityContext
	nonRoot := (ctr.RunAsNonRoot != nil && *ctr.RunAsNonRoot) || (ctr.RunAsNonRoot == nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot)
	if !nonRoot {
		p.add("Deployment keyhole: runAsNonRoot is not true")
	}
	uid := pod.RunAsUser
	if ctr.RunAsUser != nil {
		uid = ctr.RunAsUser
	}
	if uid == nil || *uid == 0 {
		p.add("Deployment keyhole: runAsUser is not a non-zero uid")
	}
	if ctr.ReadOnlyRootFilesystem == nil || !*ctr.ReadOnlyRootFilesystem {
		p.add("Deployment keyhole: readOnlyRootFilesystem is not true")
	}
	if ctr.AllowPrivilegeEscalation == nil || *ctr.AllowPrivilegeEscalation {
		p.add("Deployment keyhole: allowPrivilegeEscalation is not false")
	}
	if ctr.Privileged != nil && *ctr.Privileged {
		p.add("Deployment keyhole: privileged")
	}
	if !slices.Contains(ctr.Capabilities.Drop, "ALL") || len(ctr.Capabilities.Add) > 0 {
		p.add("Deployment keyhole: capabilities must drop ALL and add none")
	}
	if pod.SeccompProfile.Type != "RuntimeDefault" && ctr.SeccompProfile.Type != "RuntimeDefault" {
		p.add("Deployment keyhole: no RuntimeDefault seccomp profile")
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			p.add("Deployment keyhole: no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		p.add("Deployment keyhole: no memory limit")
	}
	spread := false
	for _, a := range ps.Affinity.PodAntiAffinity.Required {
		spread = spread || a.TopologyKey == "kubernetes.io/hostname" && a.LabelSelector != nil && a.LabelSelector.matches(labels)
	}
	for _, a := range ps.Affinity.PodAntiAffinity.Preferred {
		t := a.PodAffinityTerm
		spread = spread || t.TopologyKey == "kubernetes.io/hostname" && t.LabelSelector != nil && t.LabelSelector.matches(labels)
	}
	if !spread {
		p.add("Deployment keyhole: no podAntiAffinity across nodes (kubernetes.io/hostname) selecting its own pods")
	}
	hard := false
	for _, t := range ps.TopologySpreadConstraints {
		hard = hard || t.TopologyKey == "kubernetes.io/hostname" && t.WhenUnsatisfiable == "DoNotSchedule" && t.LabelSelector != nil && t.LabelSelector.matches(labels)
	}
	if !hard {
		p.add("Deployment keyhole: no DoNotSchedule topologySpreadConstraint across nodes selecting its own pods")
	}

	// Every variable is a setting keyhole reads.
	for _, e := range c.Env {
		if !k.settings[e.Name] {
			p.add("Deployment keyhole: env %s is not a setting keyhole reads", e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef == nil {
			p.add("Deployment keyhole: env %s: only values from Secrets are expected", e.Name)
		}
	}
	if e, ok := c.env("KEYHOLE_REDIS_URL"); !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		p.add("Deployment keyhole: KEYHOLE_REDIS_URL must come from a Secret (it holds Redis's password)")
	}

	// The ports keyhole listens on are the ones declared.
	for setting, name := range map[string]string{"KEYHOLE_LISTEN": "proxy", "KEYHOLE_ADMIN_LISTEN": "admin"} {
		addr, ok := c.envValue(setting)
		if !ok {
			p.add("Deployment keyhole: %s is not set", setting)
			continue
		}
		if listenPort(addr) != fmt.Sprint(c.portNamed(name)) {
			p.add("Deployment keyhole: %s is %s but the container port %q is %d", setting, addr, name, c.portNamed(name))
		}
		if !strings.HasPrefix(addr, "0.0.0.0:") && !strings.HasPrefix(addr, ":") && !strings.HasPrefix(addr, "[::]:") {
			p.add("Deployment keyhole: %s %s does not listen on the pod's address", setting, addr)
		}
	}
	// The probes ask keyhole's admin listener for paths it answers.
	admin, _ := c.envValue("KEYHOLE_ADMIN_LISTEN")
	for name, pr := range map[string]*probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
		want := map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}[name]
		if pr == nil || pr.HTTPGet == nil {
			if name != "startupProbe" {
				p.add("Deployment keyhole: no %s httpGet", name)
			}
			continue
		}
		if pr.HTTPGet.Path != want {
			p.add("Deployment keyhole: %s asks %s, want %s", name, pr.HTTPGet.Path, want)
		}
		if got := c.port(pr.HTTPGet.Port); got == 0 || fmt.Sprint(got) != listenPort(admin) {
			p.add("Deployment keyhole: %s's port %s is not KEYHOLE_ADMIN_LISTEN's (%s)", name, pr.HTTPGet.Port, admin)
		}
		rec := httptest.NewRecorder()
		k.admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pr.HTTPGet.Path, nil))
		if rec.Code != http.StatusOK {
			p.add("Deployment keyhole: %s: keyhole's admin listener answers %s with %d", name, pr.HTTPGet.Path, rec.Code)
		}
	}
}

// checkMounts: every mount is a path keyhole reads or writes, mounted the
// way it must be (configuration read-only, the state dir writable).
func checkMounts(m *manifests, d *deployment, c *container, p *problems) {
	vols := map[string]volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	rulesPath, _ := c.envValue("KEYHOLE_RULES")
	stateDir, _ := c.envValue("KEYHOLE_STATE_DIR")
	keysDir, _ := c.envValue("KEYHOLE_KEYS_DIR")
	auditDir := os.TempDir() // no directory of its own unless the audit log is a file
	if a, _ := c.envValue("KEYHOLE_AUDIT_LOG"); path.IsAbs(a) {
		auditDir = path.Dir(a)
	}
	// The directories of the rules' file: sources.
	sourceDirs := map[string]bool{}
	var cm configMap
	for _, mt := range c.VolumeMounts {
		if v := vols[mt.Name]; v.ConfigMap != nil && mt.MountPath == path.Dir(rulesPath) {
			if err := m.one("ConfigMap", v.ConfigMap.Name, &cm); err != nil {
				p.add("Deployment keyhole: the rules volume: %v", err)
			}
		}
	}
	text, ok := cm.Data[path.Base(rulesPath)]
	checkHandoffListen(text, c, p)
	if !ok {
		p.add("Deployment keyhole: KEYHOLE_RULES %s is not a key of the ConfigMap mounted at %s", rulesPath, path.Dir(rulesPath))
	} else if set, err := rules.Parse("configmap.yaml:keyhole.yaml", []byte(text)); err != nil {
		p.add("configmap.yaml: the rules do not parse: %v", err)
	} else {
		for _, f := range set.SourceFiles() {
			sourceDirs[path.Dir(f)] = true
		}
		for _, f := range handoffFiles(text) {
			sourceDirs[path.Dir(f)] = true
		}
	}
	// A file another setting names (KEYHOLE_REDIS_CA_FILE, ...) is read too.
	for _, e := range c.Env {
		if path.IsAbs(e.Value) && e.Name != "KEYHOLE_RULES" && e.Name != "KEYHOLE_STATE_DIR" && e.Name != "KEYHOLE_KEYS_DIR" && e.Name != "KEYHOLE_AUDIT_LOG" {
			sourceDirs[path.Dir(e.Value)] = true
		}
	}
	seen := map[string]bool{}
	for _, mt := range c.VolumeMounts {
		v, ok := vols[mt.Name]
		if !ok {
			p.add("Deployment keyhole: mount %s names no volume %s", mt.MountPath, mt.Name)
			continue
		}
		seen[mt.MountPath] = true
		switch mt.MountPath {
		case path.Dir(rulesPath):
			if v.ConfigMap == nil || !mt.ReadOnly {
				p.add("Deployment keyhole: %s (KEYHOLE_RULES's directory) must be a read-only ConfigMap", mt.MountPath)
			}
		case keysDir:
			var items []string
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					if it.Key != it.Path {
						p.add("Deployment keyhole: the keys Secret maps %s to %s; keyhole reads it as %s", it.Key, it.Path, it.Key)
					}
					items = append(items, it.Path)
				}
			}
			sort.Strings(items)
			if want := statekeys.Names(false); v.Secret == nil || !mt.ReadOnly || !slices.Equal(items, want) {
				p.add("Deployment keyhole: %s (KEYHOLE_KEYS_DIR) must be a read-only Secret with the items %v (statekeys.Names), got %v", mt.MountPath, want, items)
			}
			if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o077 != 0) {
				p.add("Deployment keyhole: the keys Secret's defaultMode must be private (0400)")
			}
		case stateDir:
			if v.EmptyDir == nil || mt.ReadOnly {
				p.add("Deployment keyhole: %s (KEYHOLE_STATE_DIR) must be a writable emptyDir", mt.MountPath)
			}
		case os.TempDir(), auditDir:
			if v.EmptyDir == nil && v.PersistentVolumeClaim == nil || mt.ReadOnly {
				p.add("Deployment keyhole: %s must be a writable emptyDir or volume claim", mt.MountPath)
			}
		default:
			if !sourceDirs[mt.MountPath] {
				p.add("Deployment keyhole: %s is mounted but keyhole reads nothing there (not KEYHOLE_RULES's, KEYHOLE_KEYS_DIR, KEYHOLE_STATE_DIR, %s, nor the directory of a file: source or of a file a setting names)", mt.MountPath, os.TempDir())
			} else if (v.Secret == nil && v.ConfigMap == nil) || !mt.ReadOnly {
				p.add("Deployment keyhole: %s holds files keyhole reads; it must be a read-only Secret or ConfigMap", mt.MountPath)
			}
		}
	}
	for _, dir := range []string{path.Dir(rulesPath), keysDir, stateDir} {
		if !seen[dir] {
			p.add("Deployment keyhole: nothing is mounted at %s; with a read-only root filesystem keyhole cannot use it", dir)
		}
	}
	for dir := range sourceDirs {
		if !seen[dir] {
			p.add("Deployment keyhole: keyhole reads files in %s (a file: source, or a file a setting names), which is not mounted", dir)
		}
	}
}

// checkServices: each Service selects the Deployment's pods and targets a
// port the container declares; the proxy's Service targets the proxy port.
func checkServices(m *manifests, labels map[string]string, c *container, p *problems) {
	svcs, err := all[service](m, "Service")
	if err != nil {
		p.add("%v", err)
		return
	}
	proxy := false
	for name, s := range svcs {
		sel := &selector{MatchLabels: s.Spec.Selector}
		if len(s.Spec.Selector) == 0 || !sel.matches(labels) {
			p.add("Service %s: the selector %v does not select keyhole's pods %v", name, s.Spec.Selector, labels)
		}
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target == "" {
				target = fmt.Sprint(sp.Port)
			}
			n := c.port(target)
			if n == 0 {
				p.add("Service %s: port %s targets %s, which the container does not declare", name, sp.Name, target)
			}
			if n == c.portNamed("admin") {
				p.add("Service %s: exposes the admin port", name)
			}
			proxy = proxy || name == "keyhole" && n == c.portNamed("proxy") && n != 0
		}
	}
	if !proxy {
		p.add("Service keyhole: does not target the proxy port")
	}
}

func checkPDB(m *manifests, labels map[string]string, replicas int, p *problems) {
	var b pdb
	if err := m.one("PodDisruptionBudget", "keyhole", &b); err != nil {
		p.add("pdb.yaml: %v", err)
		return
	}
	if b.Spec.MinAvailable == nil || *b.Spec.MinAvailable != 2 || b.Spec.MaxUnavailable != nil {
		p.add("PodDisruptionBudget keyhole: want minAvailable 2")
	} else if *b.Spec.MinAvailable >= replicas {
		p.add("PodDisruptionBudget keyhole: minAvailable %d leaves no disruption to %d replicas", *b.Spec.MinAvailable, replicas)
	}
	if b.Spec.Selector == nil || len(b.Spec.Selector.MatchLabels)+len(b.Spec.Selector.MatchExpressions) == 0 || !b.Spec.Selector.matches(labels) {
		p.add("PodDisruptionBudget keyhole: the selector does not select keyhole's pods %v", labels)
	}
}

// handoffRules is the part of the rules checkHandoffListen and
// handoffFiles read.
type handoffRules struct {
	Handoff *struct {
		Listen   string `yaml:"listen"`
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"handoff"`
}

// handoffFiles are the absolute paths of the handoff page's certificate
// and key, when the rules name them (a Secret mounted for a public
// certificate).
func handoffFiles(rulesText string) []string {
	var r handoffRules
	if err := yaml.Unmarshal([]byte(rulesText), &r); err != nil || r.Handoff == nil {
		return nil
	}
	var out []string
	for _, f := range []string{r.Handoff.CertFile, r.Handoff.KeyFile} {
		if path.IsAbs(f) {
			out = append(out, f)
		}
	}
	return out
}

// checkHandoffListen: when the rules turn the handoff page on, it listens
// on the pod's address at the container port named handoff, the port the
// NetworkPolicy keeps from agents and the handoff Service targets.
func checkHandoffListen(rulesText string, c *container, p *problems) {
	var r handoffRules
	if err := yaml.Unmarshal([]byte(rulesText), &r); err != nil || r.Handoff == nil {
		return // the rules' own check reports what does not parse
	}
	addr := r.Handoff.Listen
	if listenPort(addr) != fmt.Sprint(c.portNamed("handoff")) || !strings.HasPrefix(addr, "0.0.0.0:") && !strings.HasPrefix(addr, ":") {
		p.add("configmap.yaml: handoff.listen %s is not the pod's address at the container port named handoff (%d)", addr, c.portNamed("handoff"))
	}
}
