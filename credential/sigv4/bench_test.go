package sigv4

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"keyhole/secret"
)

// BenchmarkResign measures re-signing one request and streaming its body
// through keyhole's part of the path: with the agent's payload hash kept
// (the body is not read), and chunk-signed (every chunk hashed and signed
// again while it streams), each for a 1 KiB and a 20 MiB body.
func BenchmarkResign(b *testing.B) {
	creds := Credentials{AccessKeyID: secret.FromString("AKIDEXAMPLE"), SecretAccessKey: secret.FromString("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")}
	for _, size := range []int{1 << 10, 20 << 20} {
		data := bytes.Repeat([]byte("a"), size)
		name := strconv.Itoa(size>>10) + "KiB"
		if size >= 1<<20 {
			name = strconv.Itoa(size>>20) + "MiB"
		}
		b.Run("hash/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for range b.N {
				r, _ := http.NewRequest("PUT", "https://bucket.s3.amazonaws.com/key", bytes.NewReader(data))
				r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
				r.Header.Set("Authorization", agentAuth("20240101/us-east-1/s3/aws4_request", "content-length;host;x-amz-content-sha256;x-amz-date"))
				auth, _ := ParseAuthorization(r.Header.Get("Authorization"))
				if err := Sign(context.Background(), r, auth, creds, time.Now()); err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, r.Body)
			}
		})
		body := chunkedBody("0000000000000000000000000000000000000000000000000000000000000000", chunks(size)...)
		b.Run("chunked/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for range b.N {
				r, _ := http.NewRequest("PUT", "https://bucket.s3.amazonaws.com/key", bytes.NewReader(body))
				r.Header.Set("X-Amz-Content-Sha256", StreamingSigned)
				r.Header.Set("Content-Encoding", "aws-chunked")
				r.Header.Set("Authorization", agentAuth("20240101/us-east-1/s3/aws4_request", "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date"))
				auth, _ := ParseAuthorization(r.Header.Get("Authorization"))
				if err := Sign(context.Background(), r, auth, creds, time.Now()); err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// chunks splits size into 64 KiB chunks and the final empty one.
func chunks(size int) []int {
	var out []int
	for size > 0 {
		n := min(size, 64<<10)
		out = append(out, n)
		size -= n
	}
	return append(out, 0)
}
