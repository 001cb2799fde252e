package proxy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/rules"
)

// policySet parses rules whose secrets take the given values, by name.
func policySet(t *testing.T, values map[string]string) *rules.Set {
	t.Helper()
	var b strings.Builder
	b.WriteString("secrets:\n")
	for name, v := range values {
		env := "KEYHOLE_POLICY_TEST_" + name
		t.Setenv(env, v)
		fmt.Fprintf(&b, "  %s:\n    source: env:%s\n    hosts: [api.example.test]\n", name, env)
	}
	if len(values) == 0 {
		b.Reset()
		b.WriteString("{}\n")
	}
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// scrubs reports whether pol replaces v in a response.
func scrubs(pol *policy, v string) bool {
	out, n := pol.scrub.ReplaceString("echo: " + v)
	return n > 0 && !strings.Contains(out, v)
}

func TestPolicyRetiresValues(t *testing.T) {
	const grace = time.Hour
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	old := "old-value-1111aaaa"
	rotated := "new-value-2222bbbb"
	gone := "gone-value-3333cccc"
	p1 := compilePolicy(policySet(t, map[string]string{"A": old, "B": gone}), nil, t0, grace)
	p2 := compilePolicy(policySet(t, map[string]string{"A": rotated}), p1, t0.Add(time.Minute), grace)
	tests := []struct {
		name  string
		pol   *policy
		value string
		want  bool
	}{
		{"current value", p2, rotated, true},
		{"rotated out, within grace", p2, old, true},
		{"secret removed, within grace", p2, gone, true},
		{"rotated out, a reload later", compilePolicy(p2.set, p2, t0.Add(30*time.Minute), grace), old, true},
		{"rotated out, after grace", compilePolicy(p2.set, p2, t0.Add(time.Minute+grace), grace), old, false},
		{"current value, after grace", compilePolicy(p2.set, p2, t0.Add(2*grace), grace), rotated, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := scrubs(tc.pol, tc.value); got != tc.want {
				t.Errorf("got scrubbed %v, want %v", got, tc.want)
			}
		})
	}
	if n := len(p2.retired); n != 2 {
		t.Errorf("got %d retired values, want 2", n)
	}
	// A value that comes back into the rules is live again, not retired.
	p3 := compilePolicy(policySet(t, map[string]string{"A": old}), p2, t0.Add(2*time.Minute), grace)
	for _, r := range p3.retired {
		if r.Value.Reveal() == old {
			t.Error("a value back in the rules is still listed as retired")
		}
	}
	if !scrubs(p3, rotated) || !scrubs(p3, gone) || !scrubs(p3, old) {
		t.Error("got a value no longer scrubbed within its grace period")
	}
}

func TestPolicyRetiredIsBounded(t *testing.T) {
	pol := compilePolicy(policySet(t, map[string]string{"A": "value-00000"}), nil, time.Now(), time.Hour)
	set := pol.set
	for i := 1; i <= maxRetired+10; i++ {
		set = policySet(t, map[string]string{"A": fmt.Sprintf("value-%05d", i)})
		pol = compilePolicy(set, pol, time.Now(), time.Hour)
	}
	if n := len(pol.retired); n != maxRetired {
		t.Fatalf("got %d retired values, want the cap %d", n, maxRetired)
	}
	if scrubs(pol, "value-00000") || !scrubs(pol, fmt.Sprintf("value-%05d", maxRetired+9)) {
		t.Error("got the cap dropping the latest values, want the oldest dropped")
	}
}

// TestRetiredValuesExpireWithoutReload checks that the proxy drops a
// retired value when its grace period ends, with no reload in between.
func TestRetiredValuesExpireWithoutReload(t *testing.T) {
	tp := startTestProxy(t, nil, "{}\n", Config{ScrubRetired: 300 * time.Millisecond})
	tp.SetRules(policySet(t, map[string]string{"A": "expiring-value-4444dddd"}))
	tp.SetRules(policySet(t, map[string]string{"A": "current-value-5555eeee"}))
	if !scrubs(tp.policy.Load(), "expiring-value-4444dddd") {
		t.Fatal("got the rotated value not scrubbed right after the reload")
	}
	deadline := time.Now().Add(20 * time.Second)
	for scrubs(tp.policy.Load(), "expiring-value-4444dddd") {
		if time.Now().After(deadline) {
			t.Fatal("the retired value was still scrubbed 20s after its grace period of 300ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !scrubs(tp.policy.Load(), "current-value-5555eeee") {
		t.Error("got the current value no longer scrubbed")
	}
}
