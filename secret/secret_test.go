package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const raw = "sk_live_51H8xTOPSECRET"

func TestValueNeverPrints(t *testing.T) {
	v := FromString(raw)
	type wrapper struct {
		Key  Value
		Ptr  *Value
		List []Value
	}
	w := wrapper{Key: v, Ptr: &v, List: []Value{v}}
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("m", "v", v, "w", w)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("m", "v", v, "p", &v)

	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", v),
		"%s":   fmt.Sprintf("%s", v),
		"%q":   fmt.Sprintf("%q", v),
		"%x":   fmt.Sprintf("%x", v),
		"%#v":  fmt.Sprintf("%#v", v),
		"%+v":  fmt.Sprintf("%+v", w),
		"%#vw": fmt.Sprintf("%#v", w),
		"json": string(js),
		"slog": logBuf.String(),
		"err":  fmt.Errorf("wrap: %v", v).Error(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, raw) || strings.Contains(out, fmt.Sprintf("%x", raw)) {
				t.Fatalf("%s leaked the secret", name)
			}
			if !strings.Contains(out, Redacted) {
				t.Fatalf("got %q, want it to contain %q", out, Redacted)
			}
		})
	}
}

func TestValueReveal(t *testing.T) {
	v := New([]byte(raw))
	if v.Reveal() != raw {
		t.Fatal("Reveal did not return the value")
	}
	if v.Len() != len(raw) || v.IsZero() {
		t.Fatalf("got len %d zero %v, want %d false", v.Len(), v.IsZero(), len(raw))
	}
	if !v.Equal(raw) || v.Equal(raw+"x") || v.Equal("") {
		t.Fatal("Equal gave a wrong answer")
	}
	if !(Value{}).IsZero() {
		t.Fatal("zero Value is not IsZero")
	}
}
