// Package githubapp mints GitHub App installation access tokens: it signs
// an app JWT (RS256, with github.com/golang-jwt/jwt/v5) and exchanges it at
// POST {api_url}/app/installations/{id}/access_tokens, asking for the
// configured repositories and permissions only, so that the token can do
// no more than the rules say.
//
// See https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-an-installation-access-token-for-a-github-app
package githubapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"keyhole/credential"
	"keyhole/rules"
	"keyhole/secret"
)

// The app JWT's timing, as GitHub recommends: issued 60 s in the past to
// allow for clock drift, and valid for at most 10 minutes.
const (
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute
)

// RefreshBefore is how long before its expires_at a token is minted anew.
const RefreshBefore = 5 * time.Minute

// maxResponse bounds the access_tokens response read.
const maxResponse = 1 << 20

// step names this kind's exchange in errors.
const step = "GitHub installation token request"

// AppJWT returns the app JWT of cfg at now.
func AppJWT(cfg *rules.GitHubApp, now time.Time) (string, error) {
	key, err := cfg.Key()
	if err != nil || key == nil {
		return "", credential.Stepf("GitHub App private key", "cannot be read or parsed; the operator's log says why")
	}
	claims := jwt.RegisteredClaims{
		Issuer:    cfg.AppID,
		IssuedAt:  jwt.NewNumericDate(now.Add(-jwtBackdate)),
		ExpiresAt: jwt.NewNumericDate(now.Add(jwtLifetime)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		return "", credential.Stepf("GitHub App JWT", "could not be signed")
	}
	return s, nil
}

// tokenRequest is the body of the access_tokens request.
type tokenRequest struct {
	Repositories []string          `json:"repositories,omitempty"`
	Permissions  map[string]string `json:"permissions,omitempty"`
}

// tokenResponse is the part of GitHub's answer keyhole reads.
type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Fetch mints an installation token of cfg with client, and returns it
// and when to mint the next (RefreshBefore its expires_at, or halfway
// there for a token that lives less than that). Every error is a
// *credential.StepError.
func Fetch(ctx context.Context, client *http.Client, cfg *rules.GitHubApp, now time.Time) (secret.Value, time.Time, error) {
	appJWT, err := AppJWT(cfg, now)
	if err != nil {
		return secret.Value{}, time.Time{}, err
	}
	body, _ := json.Marshal(tokenRequest{Repositories: cfg.Repositories, Permissions: cfg.Permissions})
	u := cfg.APIURL + "/app/installations/" + url.PathEscape(cfg.InstallationID) + "/access_tokens"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return secret.Value{}, time.Time{}, credential.Stepf(step, "could not be built")
	}
	req.Header.Set("Authorization", "Bearer "+appJWT)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyhole")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ue) && ue.Timeout() {
			return secret.Value{}, time.Time{}, credential.Stepf(step, "got no answer in time")
		}
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return secret.Value{}, time.Time{}, credential.Stepf(step, "could not reach GitHub (%s)", credential.Unreachable(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		// GitHub's message is left out: nothing from the body reaches a
		// message, in case an endpoint echoes what it received.
		return secret.Value{}, time.Time{}, credential.Stepf(step, "returned %s", strconv.Itoa(resp.StatusCode))
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&tr); err != nil || tr.Token == "" {
		return secret.Value{}, time.Time{}, credential.Stepf(step, "returned an unparsable response")
	}
	for i := 0; i < len(tr.Token); i++ {
		if c := tr.Token[i]; c <= 0x20 || c >= 0x7f || c == ':' {
			return secret.Value{}, time.Time{}, credential.Stepf(step, "returned a token that cannot be sent in a header")
		}
	}
	exp := tr.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(time.Hour) // GitHub's tokens live an hour
	}
	refresh := exp.Add(-RefreshBefore)
	if !refresh.After(now) {
		refresh = now.Add(exp.Sub(now) / 2)
	}
	return secret.FromString(tr.Token), refresh, nil
}
