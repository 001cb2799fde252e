package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec sends gRPC messages as raw bytes, so the tests need no
// generated code: a message is a *[]byte.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// grpcEcho serves every method of a test service: each reply echoes the
// request message and the authorization metadata the server received (so
// a reply carries the injected secret back, for keyhole to mask).
func grpcEcho(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	md, _ := metadata.FromIncomingContext(stream.Context())
	auth := strings.Join(md.Get("authorization"), ",")
	reply := func(msg []byte) error {
		out := []byte(fmt.Sprintf("auth=%s msg=%s", auth, msg))
		return stream.SendMsg(&out)
	}
	recv := func() ([]byte, error) {
		var in []byte
		err := stream.RecvMsg(&in)
		return in, err
	}
	_ = stream.SetHeader(metadata.Pairs("x-header", "h"))
	stream.SetTrailer(metadata.Pairs("x-trailer", "t"))
	switch method {
	case "/test.Echo/Unary":
		in, err := recv()
		if err != nil {
			return err
		}
		return reply(in)
	case "/test.Echo/ServerStream":
		in, err := recv()
		if err != nil {
			return err
		}
		for i := range 5 {
			if err := reply(fmt.Appendf(nil, "%s-%d", in, i)); err != nil {
				return err
			}
		}
		return nil
	case "/test.Echo/ClientStream":
		n := 0
		for {
			_, err := recv()
			if errors.Is(err, io.EOF) {
				return reply(fmt.Appendf(nil, "%d", n))
			}
			if err != nil {
				return err
			}
			n++
		}
	case "/test.Echo/Bidi":
		for {
			in, err := recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := reply(in); err != nil {
				return err
			}
		}
	case "/test.Echo/Fail":
		return status.Error(codes.NotFound, "no such thing")
	}
	return status.Error(codes.Unimplemented, method)
}

// startGRPCUpstream serves grpcEcho over TLS for api.stripe.test.
func startGRPCUpstream(t *testing.T) string {
	t.Helper()
	cert := upstreamCA(t).leaf(t, []string{"api.stripe.test"}, time.Now().Add(12*time.Hour))
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)),
		grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(grpcEcho))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// connectDialer dials keyhole and opens a CONNECT tunnel to the address
// gRPC asks for: grpc-go's own proxy support reads the environment, which
// the tests keep clean.
func connectDialer(proxyAddr string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", proxyAddr)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("CONNECT %s: %v %v", addr, resp, err)
		}
		return c, nil
	}
}

// grpcClient is a gRPC client of api.stripe.test through k.
func grpcClient(t *testing.T, k *keyhole) *grpc.ClientConn {
	t.Helper()
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	cc, err := grpc.NewClient("passthrough:///api.stripe.test:443",
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "api.stripe.test"})),
		grpc.WithContextDialer(connectDialer(k.Addr)),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func startGRPCWorld(t *testing.T) (*keyhole, *grpc.ClientConn) {
	k := startKeyhole(t, stripeRules(startGRPCUpstream(t)))
	return k, grpcClient(t, k)
}

// maskedAuth is what a reply's echo of the injected credential must read:
// the secret replaced by a mask of its own length.
var maskedAuth = "Bearer <<STRIPE>>" + strings.Repeat("*", len(stripeValue)-len("<<STRIPE>>"))

func grpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer <<STRIPE>>")
}

func checkMasked(t *testing.T, got []byte, want string) {
	t.Helper()
	if strings.Contains(string(got), stripeValue) {
		t.Fatal("a reply contains the secret")
	}
	if string(got) != want {
		t.Fatalf("got reply %q, want %q", got, want)
	}
}

func TestGRPCThroughKeyhole(t *testing.T) {
	k, cc := startGRPCWorld(t)
	t.Run("unary with trailers", func(t *testing.T) {
		in, out := []byte("hello"), []byte(nil)
		var header, trailer metadata.MD
		err := cc.Invoke(grpcCtx(t), "/test.Echo/Unary", &in, &out, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		checkMasked(t, out, "auth="+maskedAuth+" msg=hello")
		if header.Get("x-header")[0] != "h" || len(trailer.Get("x-trailer")) != 1 {
			t.Fatalf("got header %v trailer %v, want x-header and x-trailer", header, trailer)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		s, err := cc.NewStream(grpcCtx(t), &grpc.StreamDesc{ServerStreams: true}, "/test.Echo/ServerStream")
		if err != nil {
			t.Fatal(err)
		}
		in := []byte("s")
		if err := s.SendMsg(&in); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseSend()
		for i := range 5 {
			var out []byte
			if err := s.RecvMsg(&out); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			checkMasked(t, out, fmt.Sprintf("auth=%s msg=s-%d", maskedAuth, i))
		}
		var out []byte
		if err := s.RecvMsg(&out); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last message: got %v, want EOF (status OK)", err)
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		s, err := cc.NewStream(grpcCtx(t), &grpc.StreamDesc{ClientStreams: true}, "/test.Echo/ClientStream")
		if err != nil {
			t.Fatal(err)
		}
		for range 7 {
			in := []byte("c")
			if err := s.SendMsg(&in); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		var out []byte
		if err := s.RecvMsg(&out); err != nil {
			t.Fatal(err)
		}
		checkMasked(t, out, "auth="+maskedAuth+" msg=7")
	})
	t.Run("bidirectional, one message at a time", func(t *testing.T) {
		s, err := cc.NewStream(grpcCtx(t), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		// Each reply must arrive before the next message is sent: nothing
		// is held back in either direction.
		for i := range 5 {
			in := fmt.Appendf(nil, "ping-%d", i)
			if err := s.SendMsg(&in); err != nil {
				t.Fatal(err)
			}
			var out []byte
			if err := s.RecvMsg(&out); err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			checkMasked(t, out, fmt.Sprintf("auth=%s msg=ping-%d", maskedAuth, i))
		}
		_ = s.CloseSend()
		var out []byte
		if err := s.RecvMsg(&out); !errors.Is(err, io.EOF) {
			t.Fatalf("at the end: got %v, want EOF", err)
		}
	})
	t.Run("an error status arrives", func(t *testing.T) {
		in, out := []byte("x"), []byte(nil)
		err := cc.Invoke(grpcCtx(t), "/test.Echo/Fail", &in, &out)
		if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "no such thing" {
			t.Fatalf("got %v, want NotFound", err)
		}
	})
	t.Run("a compressed reply is refused with a gRPC status", func(t *testing.T) {
		in, out := []byte("zip"), []byte(nil)
		err := cc.Invoke(grpcCtx(t), "/test.Echo/Unary", &in, &out, grpc.UseCompressor(gzip.Name))
		st, _ := status.FromError(err)
		if st.Code() != codes.Internal || !strings.Contains(st.Message(), "unscrubbable_encoding") {
			t.Fatalf("got %v, want Internal naming unscrubbable_encoding", err)
		}
		rec := k.WaitAudit(t, func(r map[string]any) bool { return r["reason"] == "unscrubbable_encoding" })
		if rec["proto"] != "h2" || rec["decision"] != "deny" {
			t.Fatalf("audit record: got %v, want proto h2, deny", rec)
		}
	})
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == "/test.Echo/Bidi" })
	if rec["proto"] != "h2" || rec["decision"] != "allow" || fmt.Sprint(rec["secrets"]) != "[STRIPE]" {
		t.Fatalf("audit record: got %v, want proto h2, allow, secrets [STRIPE]", rec)
	}
}
