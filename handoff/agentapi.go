package handoff

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"keyhole/agentauth"
	"keyhole/inject"
)

// The agents' API, served on https://keyhole.internal (CONTRACT.md Part 2
// "keyhole's API for agents"):
//
//	POST /v1/shares       ShareRequest → 201 Created
//	POST /v1/intake       IntakeRequest → 201 IntakeStatus (pending)
//	GET  /v1/intake/ID    IntakeStatus; only the agent that asked sees it
//
// Errors are refusals the proxy renders as Part 1's refusal JSON.

// API paths.
const (
	APISharesPath = "/v1/shares"
	APIIntakePath = "/v1/intake"
)

// maxAPIBody bounds a request body the API reads (the proxy bounds it too).
const maxAPIBody = 64 << 10

// ServeAgent answers r for the authenticated agent id (it implements the
// proxy's AgentAPI). A non-nil refusal means nothing was written.
func (s *Service) ServeAgent(w http.ResponseWriter, r *http.Request, id agentauth.Identity) *inject.Refusal {
	who := agentID{agent: id.Agent, grant: id.Grant, tokenID: id.TokenID}
	if id.Agent != nil {
		who.name = id.Agent.Name
	}
	path := r.URL.Path
	switch {
	case path == APISharesPath:
		if r.Method != http.MethodPost {
			return inject.Refuse(inject.BadRequest, "", "", "%s takes POST", APISharesPath)
		}
		var req ShareRequest
		if ref := readJSON(r, &req); ref != nil {
			return ref
		}
		if who.agent == nil {
			return inject.Refuse(inject.ShareNotAllowed, req.Secret, "", "only a named agent may share (the rules have no agents section)")
		}
		c, _, ref := s.share(r.Context(), who, req, true)
		if ref != nil {
			return ref
		}
		writeJSON(w, http.StatusCreated, c)
		return nil
	case path == APIIntakePath:
		if r.Method != http.MethodPost {
			return inject.Refuse(inject.BadRequest, "", "", "%s takes POST", APIIntakePath)
		}
		var req IntakeRequest
		if ref := readJSON(r, &req); ref != nil {
			return ref
		}
		if who.agent == nil {
			return inject.Refuse(inject.IntakeNotAllowed, "", "", "only a named agent may ask for a secret (the rules have no agents section)")
		}
		st, ref := s.intake(r.Context(), who, req)
		if ref != nil {
			return ref
		}
		writeJSON(w, http.StatusCreated, st)
		return nil
	case strings.HasPrefix(path, APIIntakePath+"/"):
		if r.Method != http.MethodGet {
			return inject.Refuse(inject.BadRequest, "", "", "%s/ID takes GET", APIIntakePath)
		}
		st, ref := s.poll(r.Context(), who, strings.TrimPrefix(path, APIIntakePath+"/"))
		if ref != nil {
			return ref
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}
	return inject.Refuse(inject.NotFound, "", "", "no API at %s (keyhole.internal serves %s and %s)", brief(path), APISharesPath, APIIntakePath)
}

// readJSON decodes r's body into v strictly: one JSON object of known
// fields, at most maxAPIBody bytes.
func readJSON(r *http.Request, v any) *inject.Refusal {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return inject.Refuse(inject.BadRequest, "", "", "the request body could not be read")
	}
	if len(body) > maxAPIBody {
		return inject.Refuse(inject.BadRequest, "", "", "the request body is larger than %d bytes", maxAPIBody)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fieldErr *json.UnmarshalTypeError
		if errors.As(err, &fieldErr) {
			return inject.Refuse(inject.BadRequest, "", "", "field %s has the wrong type", fieldErr.Field)
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok && len(msg) < 40 {
			return inject.Refuse(inject.BadRequest, "", "", "unknown field %s", msg)
		}
		return inject.Refuse(inject.BadRequest, "", "", "the request body is not a valid JSON object")
	}
	if dec.More() {
		return inject.Refuse(inject.BadRequest, "", "", "the request body holds more than one JSON value")
	}
	return nil
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// IntakeStatus is the answer of POST /v1/intake and GET /v1/intake/ID.
type IntakeStatus struct {
	ID        string    `json:"id"`
	Status    Status    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
	// Placeholder and Hosts (the hosts the human allowed) are set once
	// fulfilled.
	Placeholder string   `json:"placeholder,omitempty"`
	Hosts       []string `json:"hosts,omitempty"`
}
