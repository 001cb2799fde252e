package handoff

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"keyhole/secret"
	"keyhole/store"
)

// The Pages half of the Service: what the handoff listener's handlers ask.

// ShareMeta implements Pages; it consumes nothing.
func (s *Service) ShareMeta(ctx context.Context, id string) (ShareMeta, error) {
	sh, err := s.cfg.State.GetShare(ctx, id)
	if err != nil {
		return ShareMeta{}, err
	}
	m := ShareMeta{Status: sh.Status, ExpiresAt: sh.Expires, ViewsLeft: sh.ViewsLeft, Note: sh.Note}
	if sh.Status == StatusReady {
		m.KeyCheck = Encode(sh.KeyCheck)
	}
	return m, nil
}

// Reveal implements Pages: it takes one view, atomically.
func (s *Service) Reveal(ctx context.Context, id string, v Viewer) (RevealResponse, error) {
	sh, err := s.cfg.State.ClaimShare(ctx, id, s.cfg.Now())
	if err != nil {
		return RevealResponse{}, err
	}
	left := sh.ViewsLeft - 1
	s.sharesViewed.Add(1)
	attrs := append([]slog.Attr{slog.String("id", id), slog.String("agent", sh.Agent), slog.String("secret", sh.Secret),
		slog.String("to", sh.To), slog.Int("views_left", left)}, viewerAttrs(v)...)
	s.event("share_viewed", attrs...)
	return RevealResponse{Ciphertext: Encode(sh.Ciphertext), ViewsLeft: left}, nil
}

// IntakeMeta implements Pages; it consumes nothing.
func (s *Service) IntakeMeta(ctx context.Context, id string) (IntakeMeta, error) {
	in, err := s.cfg.State.GetIntake(ctx, id)
	if err != nil {
		return IntakeMeta{}, err
	}
	m := IntakeMeta{Status: in.Status, Agent: in.Agent, Name: in.Name, Hosts: in.Hosts, Reason: in.Reason,
		ExpiresAt: in.Expires, MaxBytes: store.MaxValueSize}
	if in.Status == StatusPending {
		m.PublicKey = Encode(in.PublicKey)
	}
	return m, nil
}

// tooLarge is the length of the base64url ciphertext of a value larger
// than store.MaxValueSize (its GCM tag included).
const tooLarge = (store.MaxValueSize+16)*4/3 + 4

// pending returns the intake id while it is pending and capability is its
// link's.
func (s *Service) pending(ctx context.Context, id, capability string) (Intake, error) {
	in, err := s.cfg.State.GetIntake(ctx, id)
	switch {
	case err != nil:
		return Intake{}, err
	case in.Status != StatusPending:
		return Intake{}, &GoneError{Status: in.Status}
	case !CheckCapability(capability, in.CapabilityHash):
		return Intake{}, ErrBadCapability
	}
	return in, nil
}

// Answer implements Pages: it opens the value, stores it for the agent
// that asked, with the hosts the human allowed, and makes it usable.
func (s *Service) Answer(ctx context.Context, id string, a AnswerRequest, v Viewer) error {
	in, err := s.pending(ctx, id, a.Capability)
	if err != nil {
		return err
	}
	if len(a.Hosts) == 0 {
		return &BadRequest{Message: "Allow at least one host."}
	}
	for _, h := range a.Hosts {
		if !slices.Contains(in.Hosts, h) {
			return &BadRequest{Message: "Only the hosts the request names can be allowed."}
		}
	}
	granted := slices.Compact(slices.Sorted(slices.Values(a.Hosts)))
	if len(a.Ciphertext) > tooLarge {
		return &BadRequest{Message: "The value is larger than keyhole takes (64 KiB)."}
	}
	value, err := OpenAnswer(in.PrivateKey, id, a)
	if err != nil {
		return err
	}
	// A pasted value often ends with a line break: drop it, as
	// `keyhole secret set` does.
	value = secret.FromString(strings.TrimRight(value.Reveal(), "\r\n"))
	switch {
	case value.IsZero():
		return &BadRequest{Message: "The value is empty."}
	case value.Len() > store.MaxValueSize:
		return &BadRequest{Message: "The value is larger than keyhole takes (64 KiB)."}
	case strings.ContainsFunc(value.Reveal(), func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }):
		return &BadRequest{Message: "The value has a line break or another control character; it must be one line."}
	}
	if set := s.cfg.Rules(); set != nil {
		if ref := s.nameFree(ctx, set, in.Name); ref != nil {
			// The name may be taken by this very intake, which a racing
			// answer has just fulfilled: that answer won.
			if cur, err := s.cfg.State.GetIntake(ctx, id); err == nil && cur.Status != StatusPending {
				return &GoneError{Status: cur.Status}
			}
			return &BadRequest{Message: "A secret with this name exists now; the agent must ask again under another name."}
		}
	}
	now := s.cfg.Now()
	if _, err := s.cfg.State.FinishIntake(ctx, id, StatusFulfilled, granted, now); err != nil {
		return err // another answer won
	}
	e := store.Entry{Name: in.Name, Value: value, Origin: store.OriginIntake, Owner: in.Agent,
		Policy: &store.Policy{Hosts: granted}}
	if err := s.cfg.Store.Put(ctx, e); err != nil {
		s.cfg.Log.Error("handoff: storing an intake's value failed", "intake", id, "name", in.Name, "err", err)
		return errors.New("handoff: the value could not be stored")
	}
	if s.cfg.RefreshStored != nil {
		if err := s.cfg.RefreshStored(ctx); err != nil {
			s.cfg.Log.Error("handoff: refreshing stored secrets failed", "err", err)
		}
	}
	s.intakesFulfilled.Add(1)
	attrs := append([]slog.Attr{slog.String("id", id), slog.String("agent", in.Agent), slog.String("name", in.Name),
		slog.String("from", in.From), slog.Any("hosts", granted)}, viewerAttrs(v)...)
	s.event("intake_fulfilled", attrs...)
	return nil
}

// Decline implements Pages.
func (s *Service) Decline(ctx context.Context, id string, d DeclineRequest, v Viewer) error {
	in, err := s.pending(ctx, id, d.Capability)
	if err != nil {
		return err
	}
	if _, err := s.cfg.State.FinishIntake(ctx, id, StatusDeclined, nil, s.cfg.Now()); err != nil {
		return err
	}
	s.intakesDeclined.Add(1)
	attrs := append([]slog.Attr{slog.String("id", id), slog.String("agent", in.Agent), slog.String("name", in.Name),
		slog.String("from", in.From)}, viewerAttrs(v)...)
	s.event("intake_declined", attrs...)
	return nil
}

var _ Pages = (*Service)(nil)
