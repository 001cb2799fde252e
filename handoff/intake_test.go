package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/inject"
	"keyhole/secret"
	"keyhole/store"
)

const intakeValue = "SG.intake_value_from_a_human_0123456789"

// askIntake creates an intake as provisioner and returns its id, the
// capability and fingerprint of its delivered link, and the status.
func askIntake(t *testing.T, f *fixture, body string) (id, capability, fingerprint string) {
	t.Helper()
	status, out, ref := f.call(t, f.id("provisioner"), "POST", "/v1/intake", body)
	if ref != nil {
		t.Fatalf("got refusal %s (%s)", ref.Reason, ref.Message)
	}
	var st IntakeStatus
	if err := json.Unmarshal(out, &st); err != nil || status != http.StatusCreated || st.Status != StatusPending {
		t.Fatalf("got %d %s", status, out)
	}
	ds := f.hook.deliveries()
	d := ds[len(ds)-1]
	if d.Kind != "intake" {
		t.Fatalf("got kind %q, want intake", d.Kind)
	}
	id, frag := linkParts(t, d.Link, IntakePath)
	if id != st.ID {
		t.Fatalf("got link id %q, want %q", id, st.ID)
	}
	capability, fingerprint, ok := strings.Cut(frag, ".")
	if !ok {
		t.Fatal("the intake link's fragment has no fingerprint")
	}
	return id, capability, fingerprint
}

// answer seals value as the page does and answers with hosts.
func answer(t *testing.T, f *fixture, id, capability, value string, hosts []string) error {
	t.Helper()
	in, err := f.state.GetIntake(context.Background(), id) // also once no longer pending
	if err != nil {
		return err
	}
	a, err := SealAnswer(in.PublicKey, id, secret.FromString(value))
	if err != nil {
		t.Fatal(err)
	}
	a.Capability, a.Hosts = capability, hosts
	return f.svc.Answer(context.Background(), id, a, Viewer{Addr: "198.51.100.4:4444", UserAgent: "test-browser"})
}

func TestIntakeFlow(t *testing.T) {
	f := newFixture(t)
	id, capability, fp := askIntake(t, f, `{"name":"SENDGRID","hosts":["api.sendgrid.com","*.sendgrid.net"],"from":"oncall","reason":"send the weekly report"}`)
	meta, err := f.svc.IntakeMeta(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Agent != "provisioner" || meta.Name != "SENDGRID" || meta.Reason != "send the weekly report" || meta.MaxBytes != store.MaxValueSize || len(meta.Hosts) != 2 {
		t.Errorf("got meta %+v", meta)
	}
	pub, _ := Decode(meta.PublicKey, 0)
	if Fingerprint(pub) != fp {
		t.Errorf("the link's fingerprint is not the served key's")
	}
	poll := func(agent string) (IntakeStatus, *inject.Refusal) {
		_, out, ref := f.call(t, f.id(agent), "GET", "/v1/intake/"+id, "")
		var st IntakeStatus
		if ref == nil {
			_ = json.Unmarshal(out, &st)
		}
		return st, ref
	}
	if st, ref := poll("provisioner"); ref != nil || st.Status != StatusPending || st.Placeholder != "" {
		t.Errorf("before the answer: got %+v, %v", st, ref)
	}
	if _, ref := poll("reader"); ref == nil || ref.Reason != inject.NotFound {
		t.Errorf("another agent's poll: got %v, want not_found", ref)
	}
	// The id alone (what the agent knows) cannot answer.
	if err := answer(t, f, id, Encode(make([]byte, CapabilityBytes)), intakeValue, []string{"api.sendgrid.com"}); !errors.Is(err, ErrBadCapability) {
		t.Errorf("a wrong capability: got %v, want ErrBadCapability", err)
	}
	if err := answer(t, f, id, capability, intakeValue, []string{"api.evil.example"}); err == nil {
		t.Errorf("a host the request does not name was granted")
	}
	if err := answer(t, f, id, capability, intakeValue, nil); err == nil {
		t.Errorf("an answer allowing no host was taken")
	}
	if err := answer(t, f, id, capability, intakeValue, []string{"api.sendgrid.com"}); err != nil {
		t.Fatalf("answer: %v", err)
	}
	st, ref := poll("provisioner")
	if ref != nil || st.Status != StatusFulfilled || st.Placeholder != "<<SENDGRID>>" || len(st.Hosts) != 1 || st.Hosts[0] != "api.sendgrid.com" {
		t.Errorf("after the answer: got %+v, %v", st, ref)
	}
	e, err := f.store.Get(context.Background(), "SENDGRID")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Value.Equal(intakeValue) || e.Origin != store.OriginIntake || e.Owner != "provisioner" || e.Policy == nil || len(e.Policy.Hosts) != 1 || e.Policy.Hosts[0] != "api.sendgrid.com" {
		t.Errorf("got entry origin %s owner %s policy %+v (value matches: %v)", e.Origin, e.Owner, e.Policy, e.Value.Equal(intakeValue))
	}
	if f.refreshes != 1 {
		t.Errorf("got %d refreshes, want 1", f.refreshes)
	}
	// Submitted twice: the second answer finds it gone.
	if err := answer(t, f, id, capability, "another value", []string{"api.sendgrid.com"}); !errors.Is(err, ErrGone) {
		t.Errorf("a second answer: got %v, want ErrGone", err)
	}
	if e, _ := f.store.Get(context.Background(), "SENDGRID"); !e.Value.Equal(intakeValue) {
		t.Errorf("the second answer replaced the value")
	}
	in, _ := f.state.GetIntake(context.Background(), id)
	if len(in.PrivateKey) != 0 {
		t.Errorf("a fulfilled intake keeps its private key")
	}
	log := f.audit.String()
	for _, want := range []string{`"event":"intake_requested"`, `"event":"intake_fulfilled"`, `"viewer_addr":"198.51.100.4:4444"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit lacks %s", want)
		}
	}
	assertClean(t, log, intakeValue, capability)
	// The state file keeps the capability's hash only, and never the value.
	raw, err := os.ReadFile(filepath.Join(f.state.dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	capBytes, _ := Decode(capability, CapabilityBytes)
	assertClean(t, string(raw), intakeValue, capability, Encode(capBytes), string(capBytes))
	// A second intake for a name that now exists.
	if _, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/intake", `{"name":"SENDGRID","hosts":["api.sendgrid.com"],"from":"oncall"}`); ref == nil || ref.Reason != inject.BadRequest {
		t.Errorf("an intake for an existing name: got %v, want bad_request", ref)
	}
}

func TestIntakeRacingAnswers(t *testing.T) {
	f := newFixture(t)
	id, capability, _ := askIntake(t, f, `{"name":"RACED","hosts":["api.example.com"],"from":"oncall"}`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Go(func() {
			err := answer(t, f, id, capability, intakeValue, []string{"api.example.com"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if !errors.Is(err, ErrGone) {
				t.Errorf("got %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("got %d winning answers, want 1", wins)
	}
}

func TestIntakeBadInput(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		agent  string
		body   string
		reason inject.Reason
	}{
		{"not in intake.from", "provisioner", `{"name":"X_1","hosts":["a.example"],"from":"alice"}`, inject.IntakeNotAllowed},
		{"unknown recipient", "provisioner", `{"name":"X_1","hosts":["a.example"],"from":"mallory"}`, inject.IntakeNotAllowed},
		{"agent without intake", "reader", `{"name":"X_1","hosts":["a.example"],"from":"oncall"}`, inject.IntakeNotAllowed},
		{"name of a rules secret", "provisioner", `{"name":"STRIPE_KEY_1","hosts":["a.example"],"from":"oncall"}`, inject.BadRequest},
		{"bad name", "provisioner", `{"name":"x-y","hosts":["a.example"],"from":"oncall"}`, inject.BadRequest},
		{"no hosts", "provisioner", `{"name":"X_1","hosts":[],"from":"oncall"}`, inject.BadRequest},
		{"bad host", "provisioner", `{"name":"X_1","hosts":["https://a.example/x"],"from":"oncall"}`, inject.BadRequest},
		{"too many hosts", "provisioner", `{"name":"X_1","hosts":["a1.example","a2.example","a3.example","a4.example","a5.example","a6.example","a7.example","a8.example","a9.example","b1.example","b2.example","b3.example","b4.example","b5.example","b6.example","b7.example","b8.example"],"from":"oncall"}`, inject.BadRequest},
		{"expires beyond max_ttl", "provisioner", `{"name":"X_1","hosts":["a.example"],"from":"oncall","expires_in":"48h"}`, inject.BadRequest},
		{"reason too long", "provisioner", `{"name":"X_1","hosts":["a.example"],"from":"oncall","reason":"` + strings.Repeat("r", MaxNote+1) + `"}`, inject.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.hook.deliveries())
			_, _, ref := f.call(t, f.id(tc.agent), "POST", "/v1/intake", tc.body)
			if ref == nil || ref.Reason != tc.reason {
				t.Fatalf("got %v, want %s", ref, tc.reason)
			}
			if len(f.hook.deliveries()) != before {
				t.Errorf("a refused intake was delivered")
			}
		})
	}
}

func TestIntakeAnswers(t *testing.T) {
	f := newFixture(t)
	t.Run("oversized value", func(t *testing.T) {
		id, capability, _ := askIntake(t, f, `{"name":"BIG","hosts":["a.example"],"from":"oncall"}`)
		var br *BadRequest
		if err := answer(t, f, id, capability, strings.Repeat("v", store.MaxValueSize+1), []string{"a.example"}); !errors.As(err, &br) || !strings.Contains(br.Message, "larger") {
			t.Errorf("got %v, want a bad request saying it is too large", err)
		}
		if in, _ := f.state.GetIntake(context.Background(), id); in.Status != StatusPending {
			t.Errorf("a refused answer finished the intake")
		}
	})
	t.Run("control characters", func(t *testing.T) {
		id, capability, _ := askIntake(t, f, `{"name":"MULTILINE","hosts":["a.example"],"from":"oncall"}`)
		var br *BadRequest
		if err := answer(t, f, id, capability, "line one\nline two", []string{"a.example"}); !errors.As(err, &br) {
			t.Errorf("got %v, want a bad request", err)
		}
		if err := answer(t, f, id, capability, intakeValue+"\r\n", []string{"a.example"}); err != nil {
			t.Fatalf("a value with a trailing line break: %v", err)
		}
		if e, err := f.store.Get(context.Background(), "MULTILINE"); err != nil || !e.Value.Equal(intakeValue) {
			t.Errorf("the trailing line break was not dropped (%v)", err)
		}
	})
	t.Run("tampered answer", func(t *testing.T) {
		id, capability, _ := askIntake(t, f, `{"name":"TAMPERED","hosts":["a.example"],"from":"oncall"}`)
		meta, _ := f.svc.IntakeMeta(context.Background(), id)
		pub, _ := Decode(meta.PublicKey, 0)
		a, _ := SealAnswer(pub, id, secret.FromString(intakeValue))
		a.Capability, a.Hosts = capability, []string{"a.example"}
		ct, _ := Decode(a.Ciphertext, 0)
		ct[0] ^= 1
		a.Ciphertext = Encode(ct)
		if err := f.svc.Answer(context.Background(), id, a, Viewer{}); !errors.Is(err, ErrDamaged) {
			t.Errorf("got %v, want ErrDamaged", err)
		}
	})
	t.Run("decline", func(t *testing.T) {
		id, capability, _ := askIntake(t, f, `{"name":"DECLINED","hosts":["a.example"],"from":"oncall"}`)
		if err := f.svc.Decline(context.Background(), id, DeclineRequest{Capability: "x"}, Viewer{}); !errors.Is(err, ErrBadCapability) {
			t.Errorf("decline with a wrong capability: got %v", err)
		}
		if err := f.svc.Decline(context.Background(), id, DeclineRequest{Capability: capability}, Viewer{}); err != nil {
			t.Fatal(err)
		}
		_, out, _ := f.call(t, f.id("provisioner"), "GET", "/v1/intake/"+id, "")
		if !strings.Contains(string(out), `"status":"declined"`) {
			t.Errorf("got %s, want declined", out)
		}
		if err := answer(t, f, id, capability, intakeValue, []string{"a.example"}); err == nil {
			t.Errorf("a declined intake took an answer")
		}
	})
	t.Run("expired", func(t *testing.T) {
		id, capability, _ := askIntake(t, f, `{"name":"LATE","hosts":["a.example"],"from":"oncall","expires_in":"5m"}`)
		meta, _ := f.svc.IntakeMeta(context.Background(), id)
		f.advance(6 * time.Minute)
		pub, _ := Decode(meta.PublicKey, 0)
		a, _ := SealAnswer(pub, id, secret.FromString(intakeValue))
		a.Capability, a.Hosts = capability, []string{"a.example"}
		if err := f.svc.Answer(context.Background(), id, a, Viewer{}); !errors.Is(err, ErrGone) {
			t.Errorf("got %v, want gone", err)
		}
		_, out, _ := f.call(t, f.id("provisioner"), "GET", "/v1/intake/"+id, "")
		if !strings.Contains(string(out), `"status":"expired"`) {
			t.Errorf("got %s, want expired", out)
		}
	})
	t.Run("delivery fails", func(t *testing.T) {
		f.hook.setFail(http.StatusInternalServerError)
		defer f.hook.setFail(0)
		_, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/intake", `{"name":"UNDELIVERED","hosts":["a.example"],"from":"oncall"}`)
		if ref == nil || ref.Reason != inject.UpstreamUnreachable {
			t.Errorf("got %v, want upstream_unreachable", ref)
		}
	})
}
