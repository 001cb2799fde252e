#include "textflag.h"

// func specialMasks(b []byte, t *byteTable, out []uint64)
//
// For each of the len(out) 64-byte blocks of b, out[i] gets a bit for
// every byte of the block that t holds (bit j for byte 64*i+j): VPSHUFB
// looks each byte's low nibble up in t, or gives 0 where its top bit is
// set. Needs AVX2; len(b) >= 64*len(out).
TEXT ·specialMasks(SB), NOSPLIT, $0-56
	MOVQ b_base+0(FP), SI
	MOVQ t+24(FP), AX
	MOVQ out_base+32(FP), DI
	MOVQ out_len+40(FP), CX
	VBROADCASTI128 (AX), Y10
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPSHUFB Y0, Y10, Y2
	VPSHUFB Y1, Y10, Y3
	VPCMPEQB Y0, Y2, Y2
	VPCMPEQB Y1, Y3, Y3
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

// func copyMasks(dst, b []byte, t *byteTable, out []uint64)
//
// specialMasks, copying each block of b to dst as it goes; len(dst) >=
// 64*len(out).
TEXT ·copyMasks(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DX
	MOVQ b_base+24(FP), SI
	MOVQ t+48(FP), AX
	MOVQ out_base+56(FP), DI
	MOVQ out_len+64(FP), CX
	VBROADCASTI128 (AX), Y10
	TESTQ CX, CX
	JZ cdone

cloop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU Y0, (DX)
	VMOVDQU Y1, 32(DX)
	VPSHUFB Y0, Y10, Y2
	VPSHUFB Y1, Y10, Y3
	VPCMPEQB Y0, Y2, Y2
	VPCMPEQB Y1, Y3, Y3
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $8, DI
	DECQ CX
	JNZ cloop

cdone:
	VZEROUPPER
	RET
