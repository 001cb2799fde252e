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
// number of secrets: a Wu–Manber shift table on short blocks of input skips
// ahead by up to the shortest pattern's length, so a body with no secret in
// it costs one table lookup per twenty bytes or so when the shortest form is
// two dozen bytes long. Throughput therefore grows with the shortest secret:
// on one core, about 2 GB/s for realistic API keys, about 1 GB/s when one
// secret is 12 bytes long, and half that for a 7-byte password. A set of at
// most four patterns, one of them shorter than 16 bytes, is searched with
// the SIMD substring search of package bytes instead.
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
// a few bytes.IndexByte scans. Each stage's result is defined as if it
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
// output equals one-shot output for every split of the input.
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
