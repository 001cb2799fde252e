package pages

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"keyhole/handoff"
	"keyhole/secret"
)

// fake is a handoff.Pages over memory that uses the real crypto.go, as the
// service does: shares sealed with SealShare, answers opened with
// OpenAnswer. It counts every claim, so tests can tell that loading a page
// consumed nothing.
type fake struct {
	mu      sync.Mutex
	shares  map[string]*handoff.Share
	intakes map[string]*fakeIntake
	claims  int   // Reveal calls that reached a share
	lookups int   // calls of any method
	fail    error // when set, every method returns it
	now     time.Time
}

type fakeIntake struct {
	handoff.Intake
	answer   secret.Value // what OpenAnswer gave
	answered bool
}

// intakeMaxBytes is the fake's limit on an intake's value.
const intakeMaxBytes = 64

func newFake() *fake {
	return &fake{shares: map[string]*handoff.Share{}, intakes: map[string]*fakeIntake{}, now: time.Now()}
}

// share adds a share of value with views and returns its id and link
// fragment (the key).
func (f *fake) share(t testing.TB, value string, views int, ttl time.Duration) (id, key string) {
	t.Helper()
	id = handoff.NewID()
	ct, check, k, err := handoff.SealShare(id, secret.FromString(value))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shares[id] = &handoff.Share{ID: id, Secret: "STRIPE_KEY_3f9a", To: "alice", Note: "the key for the new billing job",
		Ciphertext: ct, KeyCheck: check, Views: views, ViewsLeft: views, Status: handoff.StatusReady,
		Created: f.now, Expires: f.now.Add(ttl)}
	return id, k.Reveal()
}

// intake adds a pending intake and returns its id and link fragment.
func (f *fake) intake(t testing.TB, hosts ...string) (id, fragment string) {
	t.Helper()
	id = handoff.NewID()
	priv, pub, err := handoff.NewIntakeKey()
	if err != nil {
		t.Fatal(err)
	}
	capability, hash := handoff.NewCapability()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.intakes[id] = &fakeIntake{Intake: handoff.Intake{ID: id, Agent: "provisioner", Name: "SENDGRID", Hosts: hosts, From: "oncall",
		Reason: "send the weekly report mail", PrivateKey: priv, PublicKey: pub, CapabilityHash: hash,
		Status: handoff.StatusPending, Created: f.now, Expires: f.now.Add(time.Hour)}}
	link := handoff.IntakeLink("https://k", id, capability, pub).Reveal()
	return id, link[len("https://k"+handoff.IntakePath+id+"#"):]
}

func (f *fake) status(s *handoff.Share) handoff.Status {
	if s.Status == handoff.StatusReady && !f.now.Before(s.Expires) {
		s.Status, s.Ciphertext = handoff.StatusExpired, nil
	}
	return s.Status
}

func (f *fake) ShareMeta(_ context.Context, id string) (handoff.ShareMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookups++; f.fail != nil {
		return handoff.ShareMeta{}, f.fail
	}
	s, ok := f.shares[id]
	if !ok {
		return handoff.ShareMeta{}, handoff.ErrNotFound
	}
	m := handoff.ShareMeta{Status: f.status(s), ExpiresAt: s.Expires, ViewsLeft: s.ViewsLeft, Note: s.Note}
	if m.Status == handoff.StatusReady {
		m.KeyCheck = handoff.Encode(s.KeyCheck)
	}
	return m, nil
}

func (f *fake) Reveal(_ context.Context, id string, _ handoff.Viewer) (handoff.RevealResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookups++; f.fail != nil {
		return handoff.RevealResponse{}, f.fail
	}
	s, ok := f.shares[id]
	if !ok {
		return handoff.RevealResponse{}, handoff.ErrNotFound
	}
	if st := f.status(s); st != handoff.StatusReady {
		return handoff.RevealResponse{}, &handoff.GoneError{Status: st}
	}
	f.claims++
	s.ViewsLeft--
	resp := handoff.RevealResponse{Ciphertext: handoff.Encode(s.Ciphertext), ViewsLeft: s.ViewsLeft}
	if s.ViewsLeft == 0 {
		s.Status, s.Ciphertext = handoff.StatusViewed, nil
	}
	return resp, nil
}

func (f *fake) IntakeMeta(_ context.Context, id string) (handoff.IntakeMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookups++; f.fail != nil {
		return handoff.IntakeMeta{}, f.fail
	}
	in, ok := f.intakes[id]
	if !ok {
		return handoff.IntakeMeta{}, handoff.ErrNotFound
	}
	m := handoff.IntakeMeta{Status: in.Status, Agent: in.Agent, Name: in.Name, Hosts: in.Hosts, Reason: in.Reason,
		ExpiresAt: in.Expires, MaxBytes: intakeMaxBytes}
	if in.Status == handoff.StatusPending {
		m.PublicKey = handoff.Encode(in.PublicKey)
	}
	return m, nil
}

// pending counts a lookup and returns the intake id when capability is
// its link's and it is still pending; f.mu is held.
func (f *fake) pending(id, capability string) (*fakeIntake, error) {
	if f.lookups++; f.fail != nil {
		return nil, f.fail
	}
	in, ok := f.intakes[id]
	if !ok {
		return nil, handoff.ErrNotFound
	}
	if !handoff.CheckCapability(capability, in.CapabilityHash) {
		return nil, handoff.ErrBadCapability
	}
	if in.Status != handoff.StatusPending {
		return nil, &handoff.GoneError{Status: in.Status}
	}
	return in, nil
}

func (f *fake) Answer(_ context.Context, id string, a handoff.AnswerRequest, _ handoff.Viewer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.pending(id, a.Capability)
	if err != nil {
		return err
	}
	if len(a.Hosts) == 0 || slices.ContainsFunc(a.Hosts, func(h string) bool { return !slices.Contains(in.Hosts, h) }) {
		return &handoff.BadRequest{Message: "the hosts must be some of the request's"}
	}
	v, err := handoff.OpenAnswer(in.PrivateKey, id, a)
	if err != nil {
		return err
	}
	if v.Len() > intakeMaxBytes {
		return &handoff.BadRequest{Message: "the value is too long"}
	}
	in.answer, in.answered = v, true
	in.Status, in.GrantedHosts, in.PrivateKey = handoff.StatusFulfilled, a.Hosts, nil
	return nil
}

func (f *fake) Decline(_ context.Context, id string, d handoff.DeclineRequest, _ handoff.Viewer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.pending(id, d.Capability)
	if err != nil {
		return err
	}
	in.Status, in.PrivateKey = handoff.StatusDeclined, nil
	return nil
}

func (f *fake) claimCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.claims
}

func (f *fake) intakeOf(id string) fakeIntake {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.intakes[id]
}

func (f *fake) expire(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shares[id].Expires = f.now.Add(-time.Second)
}

func (f *fake) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

// tamper flips a bit of the share's ciphertext (its key check stays
// right).
func (f *fake) tamper(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ct := f.shares[id].Ciphertext
	ct[len(ct)-1] ^= 1
}
