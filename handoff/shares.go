package handoff

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"keyhole/inject"
	"keyhole/rules"
	"keyhole/secret"
	"keyhole/tokens"
)

// ShareRequest is the body of POST /v1/shares, and the operator's
// `keyhole share`.
type ShareRequest struct {
	Secret string `json:"secret"`
	To     string `json:"to"`
	// Views is how many views the link allows: 1 (the default) to
	// MaxViews.
	Views int `json:"views"`
	// ExpiresIn is a Go duration, at most max_ttl; "" means DefaultExpiry.
	ExpiresIn string `json:"expires_in"`
	// Note is shown on the page and in the delivered text.
	Note string `json:"note"`
}

// Created is the answer to POST /v1/shares: never the link.
type Created struct {
	ID        string    `json:"id"`
	To        string    `json:"to"`
	ExpiresAt time.Time `json:"expires_at"`
}

// agentID is who asks: an agent (with its token's grant), or the operator
// (name "").
type agentID struct {
	name    string
	agent   *rules.Agent
	grant   *tokens.Grant
	tokenID string
}

// ShareOptions are the operator's choices of Share.
type ShareOptions struct {
	// NoDelivery skips the webhook: the caller hands the link over itself.
	NoDelivery bool
}

// Share creates a share as the operator, who may share any secret of the
// rules or the store with any recipient, and returns it with its link
// (a secret: print it only where the operator asked). Unless
// opts.NoDelivery, it delivers the link to the recipient first.
func (s *Service) Share(ctx context.Context, req ShareRequest, opts ShareOptions) (Created, secret.Value, error) {
	c, link, ref := s.share(ctx, agentID{}, req, !opts.NoDelivery)
	if ref != nil {
		return Created{}, secret.Value{}, ref
	}
	return c, link, nil
}

// share checks req for id, seals the value, keeps the share and delivers
// the link when deliver is set.
func (s *Service) share(ctx context.Context, id agentID, req ShareRequest, deliver bool) (Created, secret.Value, *inject.Refusal) {
	set, h, ref := s.section(inject.ShareNotAllowed)
	if ref != nil {
		return Created{}, secret.Value{}, ref
	}
	if req.Secret == "" || req.To == "" {
		return Created{}, secret.Value{}, inject.Refuse(inject.BadRequest, "", "", "a share needs secret and to")
	}
	if req.Views == 0 {
		req.Views = 1
	}
	if req.Views < 1 || req.Views > MaxViews {
		return Created{}, secret.Value{}, inject.Refuse(inject.BadRequest, req.Secret, "", "views must be from 1 to %d", MaxViews)
	}
	ttl, ref := expiry(req.ExpiresIn, h.MaxTTL)
	if ref != nil {
		return Created{}, secret.Value{}, ref
	}
	if ref := checkText("note", req.Note); ref != nil {
		return Created{}, secret.Value{}, ref
	}
	recipient := h.Recipients[req.To]
	if id.name != "" {
		pol := id.agent.Share
		switch {
		case pol == nil:
			return Created{}, secret.Value{}, inject.Refuse(inject.ShareNotAllowed, req.Secret, "", "agent %s may not share secrets (its rule has no share field)", id.name)
		case !pol.AllowsSecret(req.Secret):
			return Created{}, secret.Value{}, inject.Refuse(inject.ShareNotAllowed, req.Secret, "", "agent %s may not share %s (share.secrets)", id.name, req.Secret)
		case recipient == nil || !pol.AllowsRecipient(req.To):
			return Created{}, secret.Value{}, inject.Refuse(inject.ShareNotAllowed, req.Secret, "", "agent %s may not share with %s (share.to)", id.name, brief(req.To))
		}
	} else if recipient == nil {
		return Created{}, secret.Value{}, inject.Refuse(inject.ShareNotAllowed, req.Secret, "", "no recipient %s in handoff.recipients", brief(req.To))
	}
	value, ref := s.value(ctx, set, id, req.Secret)
	if ref != nil {
		return Created{}, secret.Value{}, ref
	}
	shareID := NewID()
	ciphertext, keyCheck, key, err := SealShare(shareID, value)
	if err != nil {
		s.cfg.Log.Error("handoff: sealing a share failed", "err", err)
		return Created{}, secret.Value{}, inject.Refuse(inject.SecretUnavailable, req.Secret, "", "the share could not be sealed")
	}
	now := s.cfg.Now()
	sh := Share{
		ID: shareID, Agent: id.name, Secret: req.Secret, To: req.To, Note: req.Note,
		Ciphertext: ciphertext, KeyCheck: keyCheck, Views: req.Views, ViewsLeft: req.Views,
		Status: StatusReady, Created: now, Expires: now.Add(ttl),
	}
	if err := s.cfg.State.PutShare(ctx, sh); err != nil {
		return Created{}, secret.Value{}, s.stateRefusal("share", err)
	}
	link := ShareLink(h.BaseURL, shareID, key)
	if deliver {
		text := sharedText(id.name, req, sh.Expires)
		if err := s.deliver(ctx, recipient, "share", text, link, sh.Expires); err != nil {
			// The link never reached anyone: nothing may open it.
			if rerr := s.cfg.State.RevokeShare(context.WithoutCancel(ctx), shareID); rerr != nil {
				s.cfg.Log.Error("handoff: revoking an undelivered share failed", "share", shareID, "err", rerr)
			}
			return Created{}, secret.Value{}, inject.Refuse(inject.UpstreamUnreachable, req.Secret, "", "the link could not be delivered to %s; the share was destroyed", req.To)
		}
	}
	s.sharesCreated.Add(1)
	s.noteShare(shareID)
	s.event("share_created", slog.String("id", shareID), slog.String("agent", id.name), slog.String("token_id", id.tokenID),
		slog.String("secret", req.Secret), slog.String("to", req.To), slog.Int("views", req.Views),
		slog.Time("expires_at", sh.Expires), slog.Bool("delivered", deliver))
	return Created{ID: shareID, To: req.To, ExpiresAt: sh.Expires}, link, nil
}

// sharedText is the delivered message of a share.
func sharedText(agent string, req ShareRequest, expires time.Time) string {
	who := "The operator"
	if agent != "" {
		who = "Agent " + agent
	}
	t := who + " shares " + req.Secret + " with you through keyhole. The link works "
	if req.Views == 1 {
		t += "once"
	} else {
		t += "for " + strconv.Itoa(req.Views) + " views"
	}
	t += " and expires at " + expires.UTC().Format(time.RFC3339) + "."
	if req.Note != "" {
		t += " Note: " + req.Note
	}
	return t
}

// stateRefusal turns a State error into a refusal, logging it.
func (s *Service) stateRefusal(what string, err error) *inject.Refusal {
	if err == ErrFull {
		return inject.Refuse(inject.BudgetExceeded, "", "", "too many %ss are open; wait for some to be used or expire", what)
	}
	s.cfg.Log.Error("handoff: the state failed", "err", err)
	return inject.Refuse(inject.SecretUnavailable, "", "", "the hand-off state is unavailable")
}
