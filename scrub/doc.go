// Package scrub replaces real secret values with their placeholders in the
// responses that keyhole passes back to an agent.
//
// An agent holds placeholders such as <<STRIPE_LIVE>>; keyhole swaps them for
// real credentials on the way out. Whatever comes back — a header, a JSON
// body, a gzip-compressed stream of server-sent events, a WebSocket message —
// may echo a credential, so before the agent sees it every known value, and
// the forms it takes when a server escapes it for JSON or a URL or encodes it
// in base64, is replaced by its placeholder.
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
// substituted twice. [Chain] runs replacers one after the other, each over
// the previous one's output; keyhole chains the global replacer with a tiny
// per-request one, which swaps the Authorization: Basic credential it sent
// back to the one the agent sent and always runs first.
//
// # Streams
//
// [Replacer.NewReader] scrubs a stream. It holds back only the bytes that
// could still begin a secret, at most the longest pattern's length less one,
// and passes everything else on in the Read call in which it arrived, so
// server-sent events and chunked bodies flow as they did upstream. Streamed
// output equals one-shot output for every split of the input.
//
// # HTTP and WebSocket
//
// [Replacer.Response] scrubs an *http.Response in place: header values and
// trailers, and the body after undoing its Content-Encoding (gzip, deflate,
// br, zstd, stacked). [Replacer.WebSocket] scrubs the server-to-client
// direction of a WebSocket connection frame by frame, streaming each
// message's payload across fragments.
//
// Nothing in this package writes a secret value into an error, a log line or
// a panic.
package scrub
