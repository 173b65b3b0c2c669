/*
 * bench/c/nop.c: a program that only exits, with status 0. It has no C
 * library and no start-up code: its entry point makes the exit system
 * call, so that starting it costs the kernel's work and nothing else.
 *
 *   cc -O2 -static -nostdlib -o nop bench/c/nop.c
 */
#if defined(__x86_64__)
__asm__(".globl _start\n"
	"_start:\n"
	"\tmovl $60, %eax\n" /* exit */
	"\txorl %edi, %edi\n"
	"\tsyscall\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n"
	"_start:\n"
	"\tmov x8, #93\n" /* exit */
	"\tmov x0, #0\n"
	"\tsvc #0\n");
#else
#error "bench/c/nop.c knows the exit system call of amd64 and arm64 only"
#endif
