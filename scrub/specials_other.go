//go:build !amd64

package scrub

// haveSpecialMasks reports whether specialMasks runs vector code; without
// it the decoding stages test for their bytes one stage at a time.
const haveSpecialMasks = false

// specialMasks sets out[i] to the bytes of b's i-th 64-byte block that t
// holds.
func specialMasks(b []byte, t *byteTable, out []uint64) { specialMasksGeneric(b, t, out) }
