// Package vaulttest is a Vault server for tests: it answers the endpoints
// keyhole calls with the JSON shapes HashiCorp Vault uses (AppRole login,
// token lookup-self and renew-self, KV version 1 and 2 reads, dynamic
// secrets with leases, sys/leases/renew) and Vault's error bodies
// ({"errors": [...]}), and records every call so that tests can assert
// renewals and re-reads. No real Vault can be built or installed where
// keyhole's tests run; the real client library talks to this one.
package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Secret is what the server holds at one path.
type Secret struct {
	// KV is the KV engine version (1 or 2); 0 is a dynamic engine, whose
	// reads mint a new lease (and new data, from Mint).
	KV int
	// Data is the secret's fields.
	Data map[string]string
	// TTL is the lease duration of a dynamic secret, or a KV v1 secret's
	// ttl; 0 means Vault's defaults (32 days for KV v1, none for v2).
	TTL time.Duration
	// Renewable says whether a dynamic secret's lease renews.
	Renewable bool
	// Mint, when set, makes the data of the n-th read of a dynamic secret.
	Mint func(n int) map[string]string
	// Status, when not 0, is answered instead (403, 404, 500 ...).
	Status int

	reads int
}

// Server is a test Vault over TLS.
type Server struct {
	*httptest.Server
	// RoleID and SecretID are the AppRole credentials the server accepts.
	RoleID, SecretID string
	// TokenTTL and TokenRenewable describe the tokens AppRole login issues.
	TokenTTL       time.Duration
	TokenRenewable bool

	mu      sync.Mutex
	calls   []string // "METHOD /v1/path", in order
	ns      []string // X-Vault-Namespace of each call
	tokens  map[string]*token
	secrets map[string]*Secret
	leases  map[string]*lease
	sealed  bool
}

type token struct {
	expires   time.Time // zero: never
	ttl       time.Duration
	renewable bool
}

type lease struct {
	path      string
	ttl       time.Duration
	renewable bool
	expires   time.Time
}

// New starts a server; Close stops it.
func New() *Server {
	s := &Server{RoleID: "role-0123", SecretID: "secret-id-0123456789", TokenTTL: time.Hour, TokenRenewable: true,
		tokens: map[string]*token{}, secrets: map[string]*Secret{}, leases: map[string]*lease{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // clients that refuse its certificate are expected
	s.StartTLS()
	return s
}

// WriteCA writes the server's certificate as PEM into dir and returns the
// file's path, for vault.ca_file.
func (s *Server) WriteCA(dir string) (string, error) {
	p := filepath.Join(dir, "vault-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	return p, os.WriteFile(p, b, 0o644)
}

// AddToken makes tok a valid token; ttl 0 never expires.
func (s *Server) AddToken(tok string, ttl time.Duration, renewable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &token{ttl: ttl, renewable: renewable}
	if ttl > 0 {
		t.expires = time.Now().Add(ttl)
	}
	s.tokens[tok] = t
}

// Set puts sec at path (such as "secret/data/stripe").
func (s *Server) Set(path string, sec *Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[path] = sec
}

// Update changes the data at path (a rotation in Vault).
func (s *Server) Update(path string, data map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[path].Data = data
}

// Force makes reads of path answer status (0: answer normally).
func (s *Server) Force(path string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[path].Status = status
}

// Seal makes every endpoint answer 503 like a sealed Vault, or not.
func (s *Server) Seal(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// Calls returns how many calls were "METHOD /v1/PATH" (e.g. "GET
// /v1/secret/data/stripe"); "" counts every call.
func (s *Server) Calls(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if call == "" || c == call {
			n++
		}
	}
	return n
}

// Log returns every call so far, in order.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Namespaces returns the X-Vault-Namespace header of every call.
func (s *Server) Namespaces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ns...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	method := r.Method
	if method == http.MethodPost {
		method = http.MethodPut // the client sends writes as PUT or POST; Vault treats them alike
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, method+" "+r.URL.Path)
	s.ns = append(s.ns, r.Header.Get("X-Vault-Namespace"))
	if s.sealed {
		vaultError(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case method == http.MethodPut && path == "auth/approle/login":
		s.login(w, body)
		return
	}
	tok, ok := s.tokens[r.Header.Get("X-Vault-Token")]
	if !ok || !tok.expires.IsZero() && time.Now().After(tok.expires) {
		vaultError(w, http.StatusForbidden, "permission denied")
		return
	}
	switch {
	case method == http.MethodGet && path == "auth/token/lookup-self":
		ttl := 0
		if !tok.expires.IsZero() {
			ttl = int(time.Until(tok.expires).Seconds())
		}
		writeJSON(w, map[string]any{"data": map[string]any{"ttl": ttl, "renewable": tok.renewable, "policies": []string{"default"}, "accessor": "acc"}})
	case method == http.MethodPut && path == "auth/token/renew-self":
		if !tok.renewable {
			vaultError(w, http.StatusBadRequest, "lease is not renewable")
			return
		}
		tok.expires = time.Now().Add(tok.ttl)
		writeJSON(w, map[string]any{"auth": map[string]any{"client_token": r.Header.Get("X-Vault-Token"), "accessor": "acc",
			"lease_duration": int(tok.ttl.Seconds()), "renewable": true, "policies": []string{"default"}}})
	case method == http.MethodPut && path == "sys/leases/renew":
		s.renewLease(w, body)
	case method == http.MethodGet:
		s.read(w, path)
	default:
		vaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

func (s *Server) login(w http.ResponseWriter, body []byte) {
	var in struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if json.Unmarshal(body, &in) != nil || in.RoleID != s.RoleID || in.SecretID != s.SecretID {
		vaultError(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	tok := "hvs." + randomHex()
	s.tokens[tok] = &token{expires: time.Now().Add(s.TokenTTL), ttl: s.TokenTTL, renewable: s.TokenRenewable}
	writeJSON(w, map[string]any{"auth": map[string]any{"client_token": tok, "accessor": "acc-" + randomHex(),
		"policies": []string{"default"}, "token_policies": []string{"default"}, "metadata": map[string]string{"role_name": "keyhole"},
		"lease_duration": int(s.TokenTTL.Seconds()), "renewable": s.TokenRenewable, "entity_id": "e", "token_type": "service", "orphan": true}})
}

func (s *Server) renewLease(w http.ResponseWriter, body []byte) {
	var in struct {
		LeaseID   string `json:"lease_id"`
		Increment int    `json:"increment"`
	}
	_ = json.Unmarshal(body, &in)
	l, ok := s.leases[in.LeaseID]
	if ok {
		// A secret made non-renewable (its max TTL reached) stops renewing.
		if sec, live := s.secrets[l.path]; !live || !sec.Renewable {
			ok = false
		}
	}
	if !ok || !l.renewable || time.Now().After(l.expires) {
		vaultError(w, http.StatusBadRequest, "lease not found or lease is not renewable")
		return
	}
	l.expires = time.Now().Add(l.ttl)
	writeJSON(w, map[string]any{"request_id": randomHex(), "lease_id": in.LeaseID, "renewable": true,
		"lease_duration": int(l.ttl.Seconds()), "data": nil, "warnings": nil})
}

func (s *Server) read(w http.ResponseWriter, path string) {
	sec, ok := s.secrets[path]
	switch {
	case !ok:
		vaultError(w, http.StatusNotFound)
		return
	case sec.Status == http.StatusForbidden:
		vaultError(w, sec.Status, "1 error occurred:\n\t* permission denied\n\n")
		return
	case sec.Status != 0:
		vaultError(w, sec.Status, "internal error")
		return
	}
	sec.reads++
	data := map[string]any{}
	for k, v := range sec.Data {
		data[k] = v
	}
	out := map[string]any{"request_id": randomHex(), "lease_id": "", "renewable": false, "lease_duration": 0, "wrap_info": nil, "warnings": nil, "auth": nil}
	switch sec.KV {
	case 1:
		ttl := 2764800
		if sec.TTL > 0 {
			ttl = int(sec.TTL.Seconds())
		}
		out["lease_duration"], out["data"] = ttl, data
	case 2:
		out["data"] = map[string]any{"data": data, "metadata": map[string]any{"created_time": time.Now().UTC().Format(time.RFC3339Nano),
			"custom_metadata": nil, "deletion_time": "", "destroyed": false, "version": sec.reads}}
	default:
		if sec.Mint != nil {
			for k, v := range sec.Mint(sec.reads) {
				data[k] = v
			}
		}
		id := path + "/" + randomHex()
		s.leases[id] = &lease{path: path, ttl: sec.TTL, renewable: sec.Renewable, expires: time.Now().Add(sec.TTL)}
		out["lease_id"], out["renewable"], out["lease_duration"], out["data"] = id, sec.Renewable, int(sec.TTL.Seconds()), data
	}
	writeJSON(w, out)
}

func vaultError(w http.ResponseWriter, status int, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errs == nil {
		errs = []string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// String describes the server for test messages.
func (s *Server) String() string { return fmt.Sprintf("test Vault at %s", s.URL) }
