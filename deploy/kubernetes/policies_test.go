package kubernetes_test

import (
	"fmt"
	"net/netip"
	"slices"
)

// private are the address ranges keyhole's egress to the internet must
// leave out: the cluster's pods, services and nodes, loopback, and the
// cloud's metadata endpoint (169.254.169.254).
var private = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
	"fc00::/7", "fe80::/10", "::1/128", "::ffff:0:0/96"}

// checkPolicies: agents reach keyhole's proxy and DNS only; keyhole admits
// agents to its proxy port only (never the handoff or admin ports) and
// reaches DNS, Redis and public addresses only.
func checkPolicies(m *manifests, labels map[string]string, c *container, p *problems) {
	pols, err := all[networkPolicy](m, "NetworkPolicy")
	if err != nil {
		p.add("%v", err)
		return
	}
	kp, ap := pols["keyhole"], pols["keyhole-agents"]
	if kp == nil || ap == nil {
		p.add("NetworkPolicy: want keyhole and keyhole-agents, got %d policies", len(pols))
		return
	}
	proxyPort := c.portNamed("proxy")
	if proxyPort == 0 {
		p.add("Deployment keyhole: no container port named proxy")
		return
	}
	// onlyTo reports whether ports name only want (an empty list is every port).
	onlyTo := func(ports []policyPort, want ...int) bool {
		for _, pp := range ports {
			if !slices.Contains(want, c.port(pp.Port)) && !slices.Contains(want, atoi(pp.Port)) {
				return false
			}
		}
		return len(ports) > 0
	}
	nsLabels := map[string]string{"kubernetes.io/metadata.name": m.kust.Namespace}
	isDNS := func(pe peer) bool {
		return pe.IPBlock == nil && pe.NamespaceSelector != nil && pe.NamespaceSelector.matches(map[string]string{"kubernetes.io/metadata.name": "kube-system"}) &&
			pe.PodSelector != nil && len(pe.PodSelector.MatchLabels) > 0 && pe.PodSelector.matches(dnsLabels)
	}

	// keyhole's own policy.
	if kp.Spec.PodSelector == nil || len(kp.Spec.PodSelector.MatchLabels) == 0 || !kp.Spec.PodSelector.matches(labels) || kp.Spec.PodSelector.matches(agentLabels) {
		p.add("NetworkPolicy keyhole: the podSelector must select keyhole's pods %v, and not agents", labels)
	}
	if !slices.Contains(kp.Spec.PolicyTypes, "Ingress") || !slices.Contains(kp.Spec.PolicyTypes, "Egress") {
		p.add("NetworkPolicy keyhole: policyTypes must be Ingress and Egress")
	}
	agentsIn := false
	for i, r := range kp.Spec.Ingress {
		admits := len(r.From) == 0 // no from: every source
		for _, pe := range r.From {
			// An agent may run in any namespace: only the pod selector
			// can keep agents out.
			admits = admits || pe.IPBlock != nil || pe.PodSelector == nil || pe.PodSelector.matches(agentLabels)
		}
		if !admits {
			continue
		}
		if !onlyTo(r.Ports, proxyPort) {
			p.add("NetworkPolicy keyhole: ingress[%d] admits agent pods to ports %v, not only the proxy port %d (the handoff and admin ports must stay out of their reach)", i, r.Ports, proxyPort)
			continue
		}
		for _, pe := range r.From {
			agentsIn = agentsIn || pe.PodSelector != nil && pe.PodSelector.matches(agentLabels)
		}
	}
	if !agentsIn {
		p.add("NetworkPolicy keyhole: no ingress rule admits agent pods %v to the proxy", agentLabels)
	}
	redis, dns := false, false
	for i, r := range kp.Spec.Egress {
		if len(r.To) == 0 {
			p.add("NetworkPolicy keyhole: egress[%d] has no to: it allows every destination", i)
		}
		for _, pe := range r.To {
			switch {
			case pe.IPBlock != nil:
				if msg := leavesPrivateOut(pe.IPBlock.CIDR, pe.IPBlock.Except); msg != "" {
					p.add("NetworkPolicy keyhole: egress[%d]: %s", i, msg)
				}
			case isDNS(pe):
				dns = dns || onlyTo(r.Ports, 53)
				if !onlyTo(r.Ports, 53) {
					p.add("NetworkPolicy keyhole: egress[%d] reaches DNS on ports other than 53", i)
				}
			case pe.PodSelector != nil && len(pe.PodSelector.MatchLabels) > 0 && pe.PodSelector.matches(redisLabels) && pe.NamespaceSelector == nil:
				redis = redis || onlyTo(r.Ports, 6379)
				if !onlyTo(r.Ports, 6379) {
					p.add("NetworkPolicy keyhole: egress[%d] reaches Redis on ports other than 6379", i)
				}
			default:
				p.add("NetworkPolicy keyhole: egress[%d] reaches pods other than DNS and Redis (%+v)", i, pe)
			}
		}
	}
	if !redis || !dns {
		p.add("NetworkPolicy keyhole: egress must reach Redis %v on 6379 (%v) and DNS on 53 (%v)", redisLabels, redis, dns)
	}

	// The agents' policy.
	if ap.Spec.PodSelector == nil || !ap.Spec.PodSelector.matches(agentLabels) || ap.Spec.PodSelector.matches(labels) {
		p.add("NetworkPolicy keyhole-agents: the podSelector must select agent pods %v, and not keyhole's", agentLabels)
	}
	if !slices.Contains(ap.Spec.PolicyTypes, "Egress") {
		p.add("NetworkPolicy keyhole-agents: policyTypes must include Egress")
	}
	toProxy := false
	for i, r := range ap.Spec.Egress {
		if len(r.To) == 0 {
			p.add("NetworkPolicy keyhole-agents: egress[%d] has no to: it allows every destination", i)
		}
		for _, pe := range r.To {
			switch {
			case isDNS(pe):
				if !onlyTo(r.Ports, 53) {
					p.add("NetworkPolicy keyhole-agents: egress[%d] reaches DNS on ports other than 53", i)
				}
			case pe.IPBlock == nil && pe.PodSelector != nil && len(pe.PodSelector.MatchLabels) > 0 && pe.PodSelector.matches(labels) &&
				pe.NamespaceSelector != nil && pe.NamespaceSelector.matches(nsLabels):
				if !onlyTo(r.Ports, proxyPort) {
					p.add("NetworkPolicy keyhole-agents: egress[%d] lets agents reach keyhole on ports %v, not only the proxy port %d", i, r.Ports, proxyPort)
				} else {
					toProxy = true
				}
			default:
				p.add("NetworkPolicy keyhole-agents: egress[%d] lets agents reach something besides keyhole's proxy (in namespace %s) and DNS: %+v", i, m.kust.Namespace, pe)
			}
		}
	}
	if !toProxy {
		p.add("NetworkPolicy keyhole-agents: agents cannot reach keyhole's proxy (pods %v in namespace %s, port %d)", labels, m.kust.Namespace, proxyPort)
	}
}

// leavesPrivateOut returns what is wrong with an ipBlock: empty when every
// private range it overlaps is within one of its exceptions.
func leavesPrivateOut(cidr string, except []string) string {
	c, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Sprintf("ipBlock %q: %v", cidr, err)
	}
	var ex []netip.Prefix
	for _, e := range except {
		x, err := netip.ParsePrefix(e)
		if err != nil || !c.Contains(x.Addr()) {
			return fmt.Sprintf("ipBlock %s: except %q is not a range inside it", cidr, e)
		}
		ex = append(ex, x)
	}
	for _, r := range private {
		pr := netip.MustParsePrefix(r)
		if pr.Addr().Is4() != c.Addr().Is4() || !c.Overlaps(pr) {
			continue
		}
		covered := false
		for _, x := range ex {
			covered = covered || x.Bits() <= pr.Bits() && x.Contains(pr.Addr())
		}
		if !covered {
			return fmt.Sprintf("ipBlock %s lets keyhole reach the private range %s", cidr, r)
		}
	}
	return ""
}

// atoi is the number in s, 0 if it is not one.
func atoi(s string) int {
	n := 0
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0
	}
	return n
}
