package scrub

import "testing"

func TestBodyBufSizes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, wantCap int
	}{
		{"empty body", 1, 2 << 10},
		{"one class exactly", 2 << 10, 2 << 10},
		{"next class", 2<<10 + 1, 8 << 10},
		{"largest small body", smallBody + 1, smallBody + 1},
		{"larger than any class", smallBody + 2, smallBody + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := getBodyBuf(tc.n)
			if len(*b) != tc.n || cap(*b) != tc.wantCap {
				t.Errorf("got len %d cap %d, want len %d cap %d", len(*b), cap(*b), tc.n, tc.wantCap)
			}
			putBodyBuf(b) // a buffer of no class is dropped, not pooled
		})
	}
}
