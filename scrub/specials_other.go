//go:build !amd64

package scrub

// haveSpecialMasks reports whether specialMasks runs vector code; without
// it the decoding stages test for their bytes one stage at a time.
const haveSpecialMasks = false

// specialMasks sets out[i] to the bytes of b's i-th 64-byte block that t
// holds.
func specialMasks(b []byte, t *byteTable, out []uint64) { specialMasksGeneric(b, t, out) }

// copyMasks is specialMasks that also copies the blocks of b to dst.
func copyMasks(dst, b []byte, t *byteTable, out []uint64) {
	copy(dst, b[:64*len(out)])
	specialMasksGeneric(b, t, out)
}
