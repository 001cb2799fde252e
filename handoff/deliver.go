package handoff

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"keyhole/rules"
	"keyhole/secret"
	"keyhole/upstream"
)

// Delivery bounds.
const (
	// deliveryTimeout bounds one try, connection and answer included.
	deliveryTimeout = 10 * time.Second
	// maxWebhookAnswer is how much of a webhook's answer is read (and
	// dropped), so that the connection can be reused.
	maxWebhookAnswer = 64 << 10
)

// Delivery is the JSON keyhole POSTs to a recipient's webhook.
type Delivery struct {
	// Text is a sentence for the human: who shares what, or who asks for
	// what, and until when. It does not hold the link.
	Text string `json:"text"`
	// Link is the one-time link (a secret).
	Link string `json:"link"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expires_at"`
	// Kind is "share" or "intake".
	Kind string `json:"kind"`
}

// NewWebhookClient returns the client that delivers links: TLS verified
// against roots (nil means the system's), every address refused that the
// rules' block_private refuses (the address checked is the address
// dialed), pins of the resolve section honoured, no proxy from the
// environment, no redirects followed (a redirect could carry the link
// elsewhere).
func NewWebhookClient(roots *x509.CertPool, set func() *rules.Set) *http.Client {
	d := &net.Dialer{Timeout: deliveryTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, portStr, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, err := strconv.Atoi(portStr)
			if err != nil {
				return nil, err
			}
			canon, err := rules.CanonicalHost(host)
			if err != nil {
				return nil, err
			}
			targets, err := upstream.Resolve(ctx, nil, set(), canon, port)
			if err != nil {
				return nil, err
			}
			return upstream.Dial(ctx, d, targets)
		},
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   deliveryTimeout,
		ResponseHeaderTimeout: deliveryTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       deliveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// deliver POSTs the link to r's webhook, trying up to Tries times with a
// doubling backoff. The error says why without the URL (which may hold a
// capability) or the link.
func (s *Service) deliver(ctx context.Context, r *rules.Recipient, kind, text string, link secret.Value, expires time.Time) error {
	body, err := json.Marshal(Delivery{Text: text, Link: link.Reveal(), ExpiresAt: expires.UTC(), Kind: kind})
	if err != nil {
		return errors.New("encode the delivery")
	}
	wait := s.cfg.Backoff
	var last error
	for try := 1; try <= s.cfg.Tries; try++ {
		if try > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			wait *= 2
		}
		retry, err := s.post(ctx, r.Webhook, body)
		if err == nil {
			return nil
		}
		last = err
		s.cfg.Log.Warn("handoff: delivery failed", "recipient", r.Name, "kind", kind, "try", try, "err", err)
		if !retry {
			break
		}
	}
	s.deliveriesFailed.Add(1)
	return last
}

// post makes one try; retry says whether another could succeed.
func (s *Service) post(ctx context.Context, webhook string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("the webhook URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyhole")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return true, fmt.Errorf("post: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswer))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("the webhook answered %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("the webhook answered %d", resp.StatusCode)
	}
}
