package proxy

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFindField(t *testing.T) {
	cases := []struct {
		name, doc, path string
		want            string // the value, or the error class
		out             string // the document with the value replaced by "<<P>>"
	}{
		{"top-level key", `{"id":"k1","secret":"sk_1"}`, "secret", "sk_1", `{"id":"k1","secret":"<<P>>"}`},
		{"spaces kept", "{ \"secret\" :\n  \"sk_1\" , \"n\": 1 }", "secret", "sk_1", "{ \"secret\" :\n  \"<<P>>\" , \"n\": 1 }"},
		{"nested", `{"data":{"key":{"v":"x"},"secret":"sk_2"},"secret":7}`, "data.secret", "sk_2", `{"data":{"key":{"v":"x"},"secret":"<<P>>"},"secret":7}`},
		{"array index", `{"keys":[{"t":"a"},{"t":"sk_3"}]}`, "keys.1.t", "sk_3", `{"keys":[{"t":"a"},{"t":"<<P>>"}]}`},
		{"index 0 after empty containers", `{"keys":[{"e":{},"f":[]}, "x"],"t":"y"}`, "keys.1", "x", `{"keys":[{"e":{},"f":[]}, "<<P>>"],"t":"y"}`},
		{"escaped value", `{"secret":"sk_\u0041\"q"}`, "secret", `sk_A"q`, `{"secret":"<<P>>"}`},
		{"repeated key, same value", `{"secret":"sk_4","secret":"sk_4"}`, "secret", "sk_4", `{"secret":"<<P>>","secret":"<<P>>"}`},
		{"repeated key, other value", `{"secret":"sk_4","secret":"sk_5"}`, "secret", captureAmbiguous, ""},
		{"key named like an index", `{"0":"sk_6"}`, "0", "sk_6", `{"0":"<<P>>"}`},
		{"missing", `{"id":"k1"}`, "secret", captureNoField, ""},
		{"index out of range", `{"keys":["a"]}`, "keys.1", captureNoField, ""},
		{"a key is not a path into a string", `{"secret":"sk","x":1}`, "secret.x", captureNoField, ""},
		{"number", `{"secret":12}`, "secret", captureNotString, ""},
		{"null", `{"secret":null}`, "secret", captureNotString, ""},
		{"object", `{"secret":{"v":"sk"}}`, "secret", captureNotString, ""},
		{"empty string", `{"secret":""}`, "secret", captureNotString, ""},
		{"not JSON", `secret=sk_1`, "secret", captureNotJSON, ""},
		{"truncated", `{"secret":"sk_1"`, "secret", captureNotJSON, ""},
		{"two documents", `{"secret":"sk_1"} {"secret":"sk_2"}`, "secret", captureNotJSON, ""},
		{"empty", ``, "secret", captureNotJSON, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, spans, err := findField([]byte(tc.doc), strings.Split(tc.path, "."))
			if err != nil {
				if got := classOf(err); got != tc.want {
					t.Fatalf("got error class %s, want %s", got, tc.want)
				}
				return
			}
			if v != tc.want {
				t.Fatalf("got value %q, want %q", v, tc.want)
			}
			if got := string(replaceSpans([]byte(tc.doc), spans, "<<P>>")); got != tc.out {
				t.Fatalf("replaced: got %s, want %s", got, tc.out)
			}
		})
	}
}

// FuzzFindField checks that findField never panics, and that whenever it
// finds a value, the document with it replaced is JSON whose field at the
// path is the placeholder.
func FuzzFindField(f *testing.F) {
	f.Add([]byte(`{"secret":"sk_1","a":[1,{"b":"c"}]}`), "secret")
	f.Add([]byte(`{"data":{"keys":[{"t":"x"}]}}`), "data.keys.0.t")
	f.Add([]byte(`{"secret":"a\u0000b","secret":"a\u0000b"}`), "secret")
	f.Add([]byte(`[{"0":"x"}]`), "0.0")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		if path == "" {
			return
		}
		parts := strings.Split(path, ".")
		_, spans, err := findField(doc, parts)
		if err != nil {
			return
		}
		out := replaceSpans(doc, spans, "<<P>>")
		if !json.Valid(out) {
			t.Fatalf("the replaced document is not JSON")
		}
		v, _, err := findField(out, parts)
		if err != nil || v != "<<P>>" {
			t.Fatalf("after replacing, the field is %v (error %v), want the placeholder", v != "", err)
		}
	})
}
