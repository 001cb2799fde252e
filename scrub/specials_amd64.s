#include "textflag.h"

// specialTable holds, at each low nibble i, the special byte whose low
// nibble is i ('\n' 0x0a, '%' 0x25, '\\' 0x5c have distinct ones), and
// at the others i+1, which no byte with low nibble i equals. A byte c is
// special exactly when the table, shuffled by c, gives c back: VPSHUFB
// gives 0 where c's top bit is set, and no such c is 0.
DATA specialTable<>+0x00(SB)/8, $0x0807250504030201
DATA specialTable<>+0x08(SB)/8, $0x000f0e5c0c0a0a09
GLOBL specialTable<>(SB), RODATA|NOPTR, $16

// func specialMasks(b []byte, out []uint64)
//
// For each of the len(out) 64-byte blocks of b, out[i] gets a bit for
// every byte of the block that is '\n', '%' or '\\' (bit j for byte
// 64*i+j). Needs AVX2; len(b) >= 64*len(out).
TEXT ·specialMasks(SB), NOSPLIT, $0-48
	MOVQ b_base+0(FP), SI
	MOVQ out_base+24(FP), DI
	MOVQ out_len+32(FP), CX
	VBROADCASTI128 specialTable<>(SB), Y10
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
