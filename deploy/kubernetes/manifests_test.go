// Package kubernetes_test checks the manifests in deploy/kubernetes: it
// parses every file and checks the invariants that make keyhole safe and
// available there, and that each invariant's check can fail (a table of
// mutated manifests).
package kubernetes_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The small parts of the Kubernetes API the checks read. A field these
// structs lack is ignored, and a misspelt field decodes to its zero value,
// which the checks refuse where it matters.

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	file string
	raw  *yaml.Node
}

type selector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

// matches reports whether s selects an object with labels; a nil s (no
// selector at all) is reported by the caller, an empty one selects all.
func (s *selector) matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, has := labels[e.Key]
		in := false
		for _, x := range e.Values {
			in = in || (has && v == x)
		}
		switch e.Operator {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type container struct {
	Name  string `yaml:"name"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env       []envVar `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext securityContext `yaml:"securityContext"`
	StartupProbe    *probe          `yaml:"startupProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
		Items       []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir *struct {
		Medium string `yaml:"medium"`
	} `yaml:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
}

type deployment struct {
	Spec struct {
		Replicas *int      `yaml:"replicas"`
		Selector *selector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext securityContext `yaml:"securityContext"`
				Affinity        struct {
					PodAntiAffinity struct {
						Required []struct {
							TopologyKey   string    `yaml:"topologyKey"`
							LabelSelector *selector `yaml:"labelSelector"`
						} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
						Preferred []struct {
							PodAffinityTerm struct {
								TopologyKey   string    `yaml:"topologyKey"`
								LabelSelector *selector `yaml:"labelSelector"`
							} `yaml:"podAffinityTerm"`
						} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				TopologySpreadConstraints []struct {
					TopologyKey       string    `yaml:"topologyKey"`
					WhenUnsatisfiable string    `yaml:"whenUnsatisfiable"`
					LabelSelector     *selector `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				Containers []container `yaml:"containers"`
				Volumes    []volume    `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		MinAvailable   *int      `yaml:"minAvailable"`
		MaxUnavailable *int      `yaml:"maxUnavailable"`
		Selector       *selector `yaml:"selector"`
	} `yaml:"spec"`
}

type peer struct {
	PodSelector       *selector `yaml:"podSelector"`
	NamespaceSelector *selector `yaml:"namespaceSelector"`
	IPBlock           *struct {
		CIDR   string   `yaml:"cidr"`
		Except []string `yaml:"except"`
	} `yaml:"ipBlock"`
}

type policyPort struct {
	Port     string `yaml:"port"` // a number or a port's name; empty: every port
	Protocol string `yaml:"protocol"`
}

type policyRule struct {
	From  []peer       `yaml:"from"`
	To    []peer       `yaml:"to"`
	Ports []policyPort `yaml:"ports"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector *selector    `yaml:"podSelector"`
		PolicyTypes []string     `yaml:"policyTypes"`
		Ingress     []policyRule `yaml:"ingress"`
		Egress      []policyRule `yaml:"egress"`
	} `yaml:"spec"`
}

type configMap struct {
	Data map[string]string `yaml:"data"`
}

type kustomization struct {
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
}

// manifests are the parsed files of the directory.
type manifests struct {
	files   map[string][]byte
	objects []object
	kust    kustomization
}

// parse decodes every YAML file in files (name to contents); a file that
// does not parse is an error.
func parse(files map[string][]byte) (*manifests, error) {
	m := &manifests{files: files}
	for name, data := range files {
		if name == "kustomization.yaml" {
			if err := yaml.Unmarshal(data, &m.kust); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			var o object
			if err := n.Decode(&o); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if o.Kind == "" {
				return nil, fmt.Errorf("%s: a document without a kind", name)
			}
			o.file, o.raw = name, &n
			m.objects = append(m.objects, o)
		}
	}
	return m, nil
}

// one decodes the only object of kind named name into out.
func (m *manifests) one(kind, name string, out any) error {
	var found []object
	for _, o := range m.objects {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		return fmt.Errorf("want one %s %q, found %d", kind, name, len(found))
	}
	return found[0].raw.Decode(out)
}

// all decodes every object of kind, by name.
func all[T any](m *manifests, kind string) (map[string]*T, error) {
	out := map[string]*T{}
	for _, o := range m.objects {
		if o.Kind != kind {
			continue
		}
		v := new(T)
		if err := o.raw.Decode(v); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", o.file, kind, o.Metadata.Name, err)
		}
		out[o.Metadata.Name] = v
	}
	return out, nil
}

// readDir returns every .yaml file in dir.
func readDir(dir string) (map[string][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, p := range names {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(p)] = data
	}
	return files, nil
}

// env is the container's variable name.
func (c *container) env(name string) (envVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return envVar{}, false
}

// envValue is the value the container sets for name.
func (c *container) envValue(name string) (string, bool) {
	e, ok := c.env(name)
	return e.Value, ok
}

// port resolves a port given by number or by name to the container's port
// number, 0 when it names none of the container's ports.
func (c *container) port(ref string) int {
	for _, p := range c.Ports {
		if ref == p.Name || ref == fmt.Sprint(p.ContainerPort) {
			return p.ContainerPort
		}
	}
	return 0
}

// portNamed is the number of the container's port called name, 0 if none.
func (c *container) portNamed(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// listenPort is the port of an address setting ("0.0.0.0:9090").
func listenPort(addr string) string {
	return addr[strings.LastIndexByte(addr, ':')+1:]
}
