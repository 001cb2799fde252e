// Package scrub replaces real secret values with their placeholders in the
// responses that keyhole passes back to an agent.
//
// An agent holds placeholders such as <<STRIPE_LIVE>>; keyhole swaps them for
// real credentials on the way out. Whatever comes back — a header, a JSON
// body, a gzip-compressed stream of server-sent events, a WebSocket message —
// may echo a credential, so before the agent sees it every known value, in
// every spelling a decoder reads back as the value (escaped for JSON or a
// URL in any mix of escapes, or encoded in base64, also cut into lines), is
// replaced by its placeholder.
//
// # The engine
//
// [Compile] builds an immutable [Replacer] from the secrets of one rules
// load. It finds every pattern in a single pass over the bytes, whatever the
// number of secrets. When every pattern is at least 12 bytes long, as the
// forms of real API keys are, a sieve looks at the input only every m-3
// bytes (m the shortest pattern's length): a Bloom filter of every 4-byte
// gram of every pattern says whether the gram there may belong to a match,
// and only then are the patterns that hold it compared. Those lookups do
// not depend on each other, so the processor runs many at once; with ten
// realistic secrets (126 patterns, the shortest 25 bytes) the search costs
// about a lookup per 22 bytes. With a shorter pattern a Wu–Manber shift
// table on short blocks of input skips ahead by up to the shortest
// pattern's length, each step waiting for the one before, so throughput
// grows with the shortest secret: about 0.5 GB/s on one core for a 7-byte
// password. A set
// of at most four patterns, one of them shorter than 16 bytes, is searched
// with the SIMD substring search of package bytes instead.
//
// Matching is leftmost-longest and non-overlapping, and a replacement is
// never scanned again: a secret whose value contains "<<OTHER>>" is not
// substituted twice.
//
// # Decoding stages
//
// No list of spellings covers "any character may be escaped", so two
// stages run before the literal search and read text as a decoder does,
// only where it matters. The escapes stage looks at each percent or JSON
// escape that decodes to a byte some secret holds, reads the units
// (escapes or raw bytes) around it and replaces any spelling of a value or
// of its base64 forms that uses an escape. The wrapped stage looks at each
// line break with base64 characters on both sides and replaces a base64
// form that the break cuts. Text without escapes or such line breaks costs
// one vector pass (AVX2 on amd64; elsewhere a few bytes.IndexByte scans)
// that marks every %, \ and line feed, and that in one-shot Replace also
// copies the text to the output. Each stage's result is defined as if it
// read the whole text from its start; the fuzz tests check it against
// naive references of all three. [Chain] runs replacers one after the other, each over
// the previous one's output; keyhole chains the global replacer with a tiny
// per-request one, which swaps the Authorization: Basic credential it sent
// back to the one the agent sent and always runs first.
//
// # Streams
//
// [Replacer.NewReader] scrubs a stream. It holds back only the bytes that
// could still begin a secret in one of its spellings (at most six bytes a
// character of the longest pattern, and in practice the few bytes at the
// end that a secret could start with), and passes everything else on in
// the Read call in which it arrived, so
// server-sent events and chunked bodies flow as they did upstream. Streamed
// output equals one-shot output for every split of the input. Each read
// costs what one-shot Replace costs on it: the stages read slices of one
// buffer (the bytes each holds back, then the new input), one vector pass
// tells them all whether they have work and copies the text out, and the
// hold-back searches look only at the tail, where the sieve allows a
// pattern to begin.
//
// # HTTP and WebSocket
//
// [Replacer.Response] scrubs an *http.Response in place: the status line,
// header names and values, trailers, and the body after undoing its
// Content-Encoding (gzip, deflate, br, zstd, stacked); what it cannot
// decode is an error, never passed on. [Replacer.WebSocket] scrubs the server-to-client
// direction of a WebSocket connection frame by frame, streaming each
// message's payload across fragments.
//
// Nothing in this package writes a secret value into an error, a log line or
// a panic.
package scrub
