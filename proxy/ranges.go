package proxy

import "net/http"

// dropRanges removes Range and If-Range from the header of a request that
// carries an injected secret, so that its response is the whole
// representation. A partial response (206) would hold a slice of whatever
// the upstream echoes, and a slice of a secret value is not a secret value:
// the scrubber would pass it, and a few ranges (or one multi-range
// request) would rebuild the value. h is Apply's copy, never the agent's.
func dropRanges(h http.Header) {
	delete(h, "Range")
	delete(h, "If-Range")
}
