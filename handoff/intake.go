package handoff

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"keyhole/inject"
	"keyhole/rules"
	"keyhole/store"
)

// IntakeRequest is the body of POST /v1/intake.
type IntakeRequest struct {
	// Name is the secret's name once stored; it must be free.
	Name string `json:"name"`
	// Hosts are the host patterns the agent wants to send it to; the
	// human may narrow them.
	Hosts []string `json:"hosts"`
	// From names the recipient asked.
	From   string `json:"from"`
	Reason string `json:"reason"`
	// ExpiresIn is a Go duration, at most max_ttl; "" means DefaultExpiry.
	ExpiresIn string `json:"expires_in"`
}

// intake checks req for id, makes the request's key pair and capability,
// keeps the intake and delivers its link.
func (s *Service) intake(ctx context.Context, id agentID, req IntakeRequest) (IntakeStatus, *inject.Refusal) {
	set, h, ref := s.section(inject.IntakeNotAllowed)
	if ref != nil {
		return IntakeStatus{}, ref
	}
	if req.Name == "" || req.From == "" || len(req.Hosts) == 0 {
		return IntakeStatus{}, inject.Refuse(inject.BadRequest, "", "", "an intake needs name, hosts and from")
	}
	recipient := h.Recipients[req.From]
	if pol := id.agent.Intake; pol == nil || recipient == nil || !pol.AllowsRecipient(req.From) {
		return IntakeStatus{}, inject.Refuse(inject.IntakeNotAllowed, req.Name, "", "agent %s may not ask %s for a secret (intake.from)", id.name, brief(req.From))
	}
	if err := store.CheckName(req.Name); err != nil {
		return IntakeStatus{}, inject.Refuse(inject.BadRequest, "", "", "name: not a valid secret name (want letters, digits and '_', not starting with a digit)")
	}
	if ref := s.nameFree(ctx, set, req.Name); ref != nil {
		return IntakeStatus{}, ref
	}
	hosts, ref := intakeHosts(req.Hosts)
	if ref != nil {
		return IntakeStatus{}, ref
	}
	ttl, ref := expiry(req.ExpiresIn, h.MaxTTL)
	if ref != nil {
		return IntakeStatus{}, ref
	}
	if ref := checkText("reason", req.Reason); ref != nil {
		return IntakeStatus{}, ref
	}
	private, public, err := NewIntakeKey()
	if err != nil {
		s.cfg.Log.Error("handoff: making an intake key failed", "err", err)
		return IntakeStatus{}, inject.Refuse(inject.SecretUnavailable, req.Name, "", "the intake could not be made")
	}
	capability, capHash := NewCapability()
	now := s.cfg.Now()
	in := Intake{
		ID: NewID(), Agent: id.name, Name: req.Name, Hosts: hosts, From: req.From, Reason: req.Reason,
		PrivateKey: private, PublicKey: public, CapabilityHash: capHash,
		Status: StatusPending, Created: now, Expires: now.Add(ttl),
	}
	if err := s.cfg.State.PutIntake(ctx, in); err != nil {
		return IntakeStatus{}, s.stateRefusal("intake", err)
	}
	link := IntakeLink(h.BaseURL, in.ID, capability, public)
	text := "Agent " + id.name + " asks you for a secret, " + req.Name + ", to use with " + strings.Join(hosts, ", ") +
		". The link works once and expires at " + in.Expires.UTC().Format(time.RFC3339) + "."
	if req.Reason != "" {
		text += " Reason: " + req.Reason
	}
	if err := s.deliver(ctx, recipient, "intake", text, link, in.Expires); err != nil {
		// Nobody can answer now: drop the key.
		if _, ferr := s.cfg.State.FinishIntake(context.WithoutCancel(ctx), in.ID, StatusDeclined, nil, now); ferr != nil {
			s.cfg.Log.Error("handoff: closing an undelivered intake failed", "intake", in.ID, "err", ferr)
		}
		return IntakeStatus{}, inject.Refuse(inject.UpstreamUnreachable, req.Name, "", "the link could not be delivered to %s; the intake was withdrawn", req.From)
	}
	s.intakesRequested.Add(1)
	s.event("intake_requested", slog.String("id", in.ID), slog.String("agent", id.name), slog.String("token_id", id.tokenID),
		slog.String("name", req.Name), slog.Any("hosts", hosts), slog.String("from", req.From), slog.Time("expires_at", in.Expires))
	return IntakeStatus{ID: in.ID, Status: StatusPending, ExpiresAt: in.Expires}, nil
}

// nameFree refuses a name that a secret of the rules or an entry of the
// store already has: an intake never replaces a value.
func (s *Service) nameFree(ctx context.Context, set *rules.Set, name string) *inject.Refusal {
	taken := inject.Refuse(inject.BadRequest, name, "", "a secret named %s already exists; ask under another name", name)
	if set.Secrets[name] != nil || set.Databases[name] != nil {
		return taken
	}
	_, err := s.cfg.Store.Get(ctx, name)
	switch {
	case err == nil:
		return taken
	case !errors.Is(err, store.ErrNotFound):
		s.cfg.Log.Error("handoff: reading the store failed", "err", err)
		return inject.Refuse(inject.SecretUnavailable, name, "", "the store is unavailable")
	}
	return nil
}

// intakeHosts checks and canonicalizes the hosts an intake asks for.
func intakeHosts(in []string) ([]string, *inject.Refusal) {
	if len(in) > MaxIntakeHosts {
		return nil, inject.Refuse(inject.BadRequest, "", "", "hosts names more than %d hosts", MaxIntakeHosts)
	}
	out := make([]string, 0, len(in))
	for i, h := range in {
		p, err := rules.ParseHostPattern(h)
		if err != nil {
			return nil, inject.Refuse(inject.BadRequest, "", "", "hosts[%d]: not a host pattern (want e.g. api.example.com or *.example.com:8443)", i)
		}
		if c := p.String(); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// poll answers GET /v1/intake/ID: only the agent that asked sees it.
func (s *Service) poll(ctx context.Context, id agentID, intakeID string) (IntakeStatus, *inject.Refusal) {
	notFound := inject.Refuse(inject.NotFound, "", "", "no intake with this id")
	if id.agent == nil || len(intakeID) > 64 {
		return IntakeStatus{}, notFound
	}
	in, err := s.cfg.State.GetIntake(ctx, intakeID)
	switch {
	case errors.Is(err, ErrNotFound):
		return IntakeStatus{}, notFound
	case err != nil:
		return IntakeStatus{}, s.stateRefusal("intake", err)
	case in.Agent != id.name:
		return IntakeStatus{}, notFound
	}
	st := IntakeStatus{ID: in.ID, Status: in.Status, ExpiresAt: in.Expires}
	if in.Status == StatusFulfilled {
		st.Placeholder, st.Hosts = "<<"+in.Name+">>", in.GrantedHosts
	}
	return st, nil
}
