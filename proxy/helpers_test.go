package proxy

import (
	"net/http"
	"net/netip"
	"reflect"
	"testing"
)

func TestIsPrivate(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true,
		"172.31.255.255": true, "192.168.1.1": true, "169.254.169.254": true, "fe80::1": true,
		"100.64.0.1": true, "100.127.255.255": true, "fc00::1": true, "fd12:3456::1": true,
		"224.0.0.1": true, "ff02::1": true, "0.0.0.0": true, "::": true, "0.1.2.3": true,
		"255.255.255.255": true, "240.0.0.1": true, "198.18.0.1": true,
		"::ffff:127.0.0.1": true, "::ffff:10.0.0.1": true,
		"64:ff9b::a00:1": true, "2002:a00:1::1": true, "2002:7f00:1::": true,
		"8.8.8.8": false, "1.1.1.1": false, "172.32.0.1": false, "100.128.0.1": false,
		"2606:4700:4700::1111": false, "64:ff9b::808:808": false, "2002:808:808::": false,
		"192.0.2.1": false,
	}
	for addr, want := range cases {
		t.Run(addr, func(t *testing.T) {
			if got := isPrivate(netip.MustParseAddr(addr)); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	cases := []struct {
		in       string
		host     string
		port     int
		wantFail bool
	}{
		{in: "api.example.com", host: "api.example.com", port: 443},
		{in: "API.Example.COM.:443", host: "api.example.com", port: 443},
		{in: "api.example.com:8443", host: "api.example.com", port: 8443},
		{in: "[::1]:8443", host: "::1", port: 8443},
		{in: "[::1]", host: "::1", port: 443},
		{in: "127.0.0.1", host: "127.0.0.1", port: 443},
		{in: "a.com:0", wantFail: true},
		{in: "a.com:99999", wantFail: true},
		{in: "a.com:+1", wantFail: true},
		{in: "user@a.com", wantFail: true},
		{in: "<<KEY>>", wantFail: true},
		{in: "\u0430pple.com", wantFail: true},
		{in: "", wantFail: true},
		{in: "2130706433", wantFail: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			host, port, err := splitHostPort(tc.in, 443)
			if tc.wantFail {
				if err == nil {
					t.Fatalf("got %s %d, want an error", host, port)
				}
				return
			}
			if err != nil || host != tc.host || port != tc.port {
				t.Fatalf("got %q %d %v, want %q %d", host, port, err, tc.host, tc.port)
			}
		})
	}
}

func TestPrepareHeader(t *testing.T) {
	cases := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "hop-by-hop and proxy credentials go",
			in: http.Header{"Connection": {"close, X-Secret-Hop"}, "X-Secret-Hop": {"1"}, "Keep-Alive": {"5"},
				"Proxy-Authorization": {"Basic eDp5"}, "Proxy-Connection": {"keep-alive"}, "Te": {"trailers"},
				"Authorization": {"Bearer <<K>>"}},
			want: http.Header{"Authorization": {"Bearer <<K>>"}},
		},
		{
			name: "websocket upgrade keeps Connection and Upgrade, loses extensions",
			in: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
				"Sec-Websocket-Extensions": {"permessage-deflate"}, "Sec-Websocket-Key": {"k"}},
			want: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}},
		},
		{
			name: "an upgrade that is not websocket goes, with every other hop-by-hop header",
			in: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}, "Trailer": {"X-T"},
				"Transfer-Encoding": {"chunked"}, "Proxy-Authenticate": {"Basic"}, "Accept": {"*/*"}},
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name: "accept-encoding keeps what the scrubber decodes",
			in:   http.Header{"Accept-Encoding": {"gzip;q=1.0, compress, br, sdch", "zstd"}},
			want: http.Header{"Accept-Encoding": {"gzip;q=1.0, br, zstd"}},
		},
		{
			name: "accept-encoding with nothing decodable goes",
			in:   http.Header{"Accept-Encoding": {"compress, sdch"}},
			want: http.Header{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prepareHeader(tc.in)
			if !reflect.DeepEqual(tc.in, tc.want) {
				t.Errorf("got %v, want %v", tc.in, tc.want)
			}
			again := tc.in.Clone()
			prepareHeader(again)
			if !reflect.DeepEqual(again, tc.want) {
				t.Errorf("not idempotent: got %v", again)
			}
		})
	}
}

func TestIsToken(t *testing.T) {
	cases := map[string]bool{
		"Authorization": true, "X-Api-Key": true, "a!#$%&'*+-.^_`|~9": true,
		"": false, "Transfer-Encoding ": false, "X:Y": false, "X\x00": false,
		"X\x7f": false, "Ü": false, "X(1)": false, `X"`: false, "X{": false,
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			if got := isToken(in); got != want {
				t.Errorf("isToken(%q) = %v, want %v", in, got, want)
			}
		})
	}
}

func TestParseProxyBasic(t *testing.T) {
	cases := []struct {
		in, user, pass string
		ok             bool
	}{
		{"Basic YmlsbGluZzp0b2s=", "billing", "tok", true},
		{"basic YmlsbGluZzp0b2s=", "billing", "tok", true},
		{"Basic YmlsbGluZzp0OmsK", "billing", "t:k\n", true},
		{"Bearer YmlsbGluZzp0b2s=", "", "", false},
		{"Basic !!!", "", "", false},
		{"Basic OnRvaw==", "", "", false}, // ":tok": no user
		{"Basic YmlsbGluZw==", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			user, pass, ok := parseProxyBasic(tc.in)
			if user != tc.user || pass != tc.pass || ok != tc.ok {
				t.Errorf("got %q %q %v, want %q %q %v", user, pass, ok, tc.user, tc.pass, tc.ok)
			}
		})
	}
}
