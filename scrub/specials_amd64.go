package scrub

import "golang.org/x/sys/cpu"

// haveSpecialMasks reports whether specialMasks runs vector code; without
// it the decoding stages test for their bytes one stage at a time.
var haveSpecialMasks = cpu.X86.HasAVX2

// specialMasks sets out[i] to the bytes of b's i-th 64-byte block that t
// holds (see specialMasksGeneric). It needs AVX2.
//
//go:noescape
func specialMasks(b []byte, t *byteTable, out []uint64)

// copyMasks is specialMasks that also copies the blocks of b to dst.
//
//go:noescape
func copyMasks(dst, b []byte, t *byteTable, out []uint64)
