package proxy

import (
	"maps"
	"net/http"
	"reflect"
	"testing"
)

// TestScanHeaderNamesHop holds the shortcut the exchange takes: a header
// scanHeaderNames finds no hop-by-hop name in is one prepareHeader changes
// only as filterAcceptEncoding does; and one it does find one in is one
// prepareHeader changes otherwise too.
func TestScanHeaderNamesHop(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		hop  bool
	}{
		{"plain", http.Header{"Accept": {"*/*"}, "Authorization": {"Bearer <<KEY>>"}, "Accept-Encoding": {"gzip, compress"}}, false},
		{"empty", http.Header{}, false},
		{"connection", http.Header{"Connection": {"keep-alive"}, "Accept": {"*/*"}}, true},
		{"named by connection", http.Header{"Connection": {"X-Secret"}, "X-Secret": {"<<KEY>>"}}, true},
		{"upgrade", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Extensions": {"permessage-deflate"}}, true},
		{"proxy authorization", http.Header{"Proxy-Authorization": {"Basic eDp5"}}, true},
		{"te", http.Header{"Te": {"trailers"}}, true},
		{"keep-alive", http.Header{"Keep-Alive": {"timeout=5"}}, true},
		{"transfer-encoding", http.Header{"Transfer-Encoding": {"chunked"}}, true},
		{"proxy-connection", http.Header{"Proxy-Connection": {"keep-alive"}}, true},
		{"trailer", http.Header{"Trailer": {"X-Sum"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, hop := scanHeaderNames(tc.h)
			if !ok || hop != tc.hop {
				t.Fatalf("got ok %v, hop %v; want true, %v", ok, hop, tc.hop)
			}
			full, short := tc.h.Clone(), tc.h.Clone()
			prepareHeader(full)
			filterAcceptEncoding(short)
			if same := reflect.DeepEqual(full, short); same == hop {
				t.Errorf("prepareHeader gives %v, filterAcceptEncoding alone %v; hop %v", full, short, hop)
			}
			if !hop && !maps.EqualFunc(full, short, func(a, b []string) bool { return reflect.DeepEqual(a, b) }) {
				t.Errorf("prepareHeader and filterAcceptEncoding differ: %v, %v", full, short)
			}
		})
	}
	if ok, _ := scanHeaderNames(http.Header{"Bad Name": {"1"}}); ok {
		t.Error("a name with a space scanned as a token")
	}
}
