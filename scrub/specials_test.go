package scrub

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSpecialMasks checks the vector pass against the byte loop on random
// text dense in special bytes, at every length and offset up to a few
// blocks.
func TestSpecialMasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\n%\\\rab{}")
	buf := make([]byte, 64*9)
	for i := range buf {
		buf[i] = alphabet[rng.IntN(len(alphabet))]
		if i%3 == 0 {
			buf[i] = byte(rng.IntN(256)) // every byte, top bit set or not
		}
	}
	all := make([]byte, 256)
	for c := range all {
		all[c] = byte(c)
	}
	for _, tab := range []*byteTable{specialBoth, specialEscapes, specialWrapped} {
		got, want := make([]uint64, 4), make([]uint64, 4)
		specialMasks(all, tab, got)
		specialMasksGeneric(all, tab, want)
		if !slices.Equal(got, want) {
			t.Fatalf("bytes 0-255, table %q: masks %#x, want %#x", tab[:], got, want)
		}
		for c := range 256 {
			if want := c == '\n' && tab != specialEscapes || (c == '%' || c == '\\') && tab != specialWrapped; tab.has(byte(c)) != want {
				t.Fatalf("table %q: has(%#x) = %v", tab[:], c, !want)
			}
		}
	}
	for off := range 64 {
		for n := range 5 {
			b := buf[off : off+64*n]
			got, want := make([]uint64, n), make([]uint64, n)
			specialMasks(b, specialBoth, got)
			specialMasksGeneric(b, specialBoth, want)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("offset %d, block %d of %d: mask %#x, want %#x", off, i, n, got[i], want[i])
				}
			}
		}
	}
}

// TestPresence checks that the one-pass presence test agrees with each
// decoding stage's own, for forms planted next to 64-byte and 4 KiB
// block boundaries.
func TestPresence(t *testing.T) {
	body, secrets := benchBody(16<<10, 3, 0)
	r := Compile(secrets)
	v := secrets[0].Value.Reveal()
	spellings := []string{
		"%" + hexByte(v[0]) + v[1:], `\u00` + hexByte(v[0]) + v[1:], v[:5] + "\n" + v[5:], v[:5] + "\r\n" + v[5:],
		"x\ny", "%zz", `\q`, "a\n", "\na", "%4", `\u00`,
	}
	for _, sp := range spellings {
		for _, at := range []int{0, 1, 60, 63, 64, 65, 4090, 4095, 4096, 4097, 8191, len(body) - len(sp) - 1, len(body) - len(sp)} {
			b := bytes.Clone(body)
			copy(b[at:], sp)
			checkPresence(t, r, b)
			checkPresence(t, r, b[:at+len(sp)])
			checkPresence(t, r, b[at:])
		}
	}
}

func hexByte(c byte) string {
	return string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15])
}

// checkPresence fails t when presence and the stages' has disagree on b.
func checkPresence(t *testing.T, r *Replacer, b []byte) {
	t.Helper()
	has := make([]bool, 8)
	if !presence(r.stages, b, has) {
		t.Skip("no vector presence pass on this machine")
	}
	for k, s := range r.stages {
		if s.m == nil {
			continue
		}
		want := s.m.has(b)
		if has[k] != want {
			t.Fatalf("stage %d: presence says %v, has says %v (body of %d bytes)", k, has[k], want, len(b))
		}
		// The stage alone: the pass marks only its own bytes.
		if got := s.has(b); got != want {
			t.Fatalf("stage %d alone: presence says %v, has says %v (body of %d bytes)", k, got, want, len(b))
		}
	}
}

// FuzzPresence checks the one-pass presence test against each decoding
// stage's own on bodies that hold a spelling of a secret (escaped, cut by
// a line break, or a near miss) written at a place chosen next to a 64-byte
// block boundary or a 4 KiB chunk boundary of the pass, and cut there.
func FuzzPresence(f *testing.F) {
	f.Add([]byte(`{"a":"b"}`+"\n"), uint16(63), byte(0), false)
	f.Add([]byte("abc"), uint16(4095), byte(2), true)
	f.Add([]byte("%41\\u0041\r\n"), uint16(64), byte(5), false)
	f.Add([]byte("x"), uint16(127), byte(8), true)
	body, secrets := benchBody(12<<10, 2, 0)
	r := Compile(secrets)
	v := secrets[0].Value.Reveal()
	spellings := []string{
		"%" + hexByte(v[0]) + v[1:], `\u00` + hexByte(v[0]) + v[1:], v[:5] + "\n" + v[5:], v[:5] + "\r\n" + v[5:],
		"x\ny", "%zz", `\q`, "a\n", "\na", "%4", `\u00`, "\r\n",
	}
	f.Fuzz(func(t *testing.T, fill []byte, at uint16, form byte, cut bool) {
		b := bytes.Clone(body)
		for i := 0; len(fill) > 0 && i < len(b); i += len(fill) {
			copy(b[i:], fill)
		}
		sp := spellings[int(form)%len(spellings)]
		// Near a boundary: a multiple of 64 off by up to 8 either way.
		pos := min(len(b)-len(sp), max(0, int(at)/64*64+int(at)%17-8))
		copy(b[pos:], sp)
		if cut {
			b = b[:pos+len(sp)]
		}
		checkPresence(t, r, b)
	})
}

// TestReplaceCopy checks Replace where the presence pass copies the body
// (no decoding stage has anything to do) and the literal stage writes
// over the copy from its first match on: a literal form, an escaped one
// and a wrapped one, written next to 64-byte block and 4 KiB chunk
// boundaries, the first or the last bytes of the body, appended to a dst
// that already holds bytes.
func TestReplaceCopy(t *testing.T) {
	body, secrets := benchBody(4200, 3, 0)
	r := Compile(secrets)
	v := secrets[1].Value.Reveal()
	b64 := base64Forms(v)[0]
	spellings := []string{v, forms(v)[1], "%" + hexByte(v[0]) + v[1:], b64[:3] + "\n" + b64[3:], b64[:7] + "\r\n" + b64[7:], "no secret"}
	for _, sp := range spellings {
		for _, at := range []int{0, 63, 64, 4095, 4096, 4097, len(body) - 70, len(body) - len(sp)} {
			for _, n := range []int{at + len(sp), len(body)} {
				in := bytes.Clone(body)
				copy(in[at:], sp)
				in = in[:n]
				want, count := reference(r, in)
				dst := []byte("held")
				got, k := r.Replace(dst, in)
				if string(got[:4]) != "held" || !bytes.Equal(got[4:], want) || k != count {
					t.Fatalf("spelling %d at %d of %d: got %d replacements, want %d; %s",
						slices.Index(spellings, sp), at, n, k, count, describeDiff(got[4:], want))
				}
			}
		}
	}
}
