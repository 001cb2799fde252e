package scrub_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"keyhole/scrub"
	"keyhole/secret"
)

func ExampleReplacer_NewReader() {
	// Once per rules load.
	r := scrub.Compile([]scrub.Secret{
		{Name: "STRIPE_LIVE", Value: secret.FromString("sk_live_4eC39HqLyjWDarjtT1zdp7dc")},
		{Name: "DB_PASSWORD", Value: secret.FromString("p@ss/w<rd")},
	})

	// Per response: the body streams through the scrubber.
	body := strings.NewReader(`{"key":"sk_live_4eC39HqLyjWDarjtT1zdp7dc",` +
		`"dsn":"postgres://app:p%40ss%2Fw%3Crd@db","json":"p@ss/w\u003crd"}`)
	rd := r.NewReader(body)
	out, err := io.ReadAll(rd)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(out))
	fmt.Println(rd.Count(), "replaced")
	// Output:
	// {"key":"<<STRIPE_LIVE>>","dsn":"postgres://app:<<DB_PASSWORD>>@db","json":"<<DB_PASSWORD>>"}
	// 3 replaced
}

func ExampleChain() {
	global := scrub.Compile([]scrub.Secret{{Name: "PW", Value: secret.FromString("correct-horse-battery")}})
	// The proxy sent Basic base64("bob:correct-horse-battery") where the
	// agent had sent base64("bob:<<PW>>"); swap it back in the response.
	sent := base64.StdEncoding.EncodeToString([]byte("bob:correct-horse-battery"))
	agent := base64.StdEncoding.EncodeToString([]byte("bob:<<PW>>"))
	r := scrub.Chain(global, scrub.NewPairs([]scrub.Pair{{Find: sent, Replace: agent}}))

	echo := `{"authorization":"Basic ` + sent + `","pw":"correct-horse-battery"}`
	s, n := r.ReplaceString(echo)
	fmt.Println(s, n)
	// Output:
	// {"authorization":"Basic Ym9iOjw8UFc+Pg==","pw":"<<PW>>"} 2
}

func ExampleReplacer_Response() {
	r := scrub.Compile([]scrub.Secret{{Name: "TOKEN", Value: secret.FromString("ghp_16C7e42F292c6912E7710c838347Ae178B4a")}})
	resp := &http.Response{
		StatusCode:    http.StatusFound,
		Header:        http.Header{"Location": {"https://example.com/?t=ghp_16C7e42F292c6912E7710c838347Ae178B4a"}},
		ContentLength: -1,
		Body:          io.NopCloser(strings.NewReader("token ghp_16C7e42F292c6912E7710c838347Ae178B4a")),
	}
	body, err := r.Response(resp, http.MethodGet)
	if err != nil {
		fmt.Println(err)
		return
	}
	body.OnDone(func(s scrub.BodyStats) { fmt.Println("audit: scrubbed", s.Scrubbed, "complete", s.Complete) })
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	fmt.Println(resp.Header.Get("Location"))
	fmt.Println(string(out))
	// Output:
	// audit: scrubbed 2 complete true
	// https://example.com/?t=<<TOKEN>>
	// token <<TOKEN>>
}
