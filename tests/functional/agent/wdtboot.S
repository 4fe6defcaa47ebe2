/* A 512-byte boot sector for petguard's agent tests (built with gcc -c + ld in the test session).
 *
 * It finds QEMU's emulated i6300esb watchdog (PCI 8086:25ab) on bus 0 through the legacy config
 * ports 0xcf8/0xcfc, arms it entirely through PCI config space (reg 0x60 = 0x0007: 1 MHz scale,
 * action enabled; reg 0x68 = 0x02: enable), says so on COM1, then halts and never feeds it: the
 * watchdog's action runs about 2 s later. Built with -DPANIC it first writes 1 to the pvpanic port
 * 0x505, which QEMU reports as a guest panic. No device found: it just halts.
 */
        .code16
        .text
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $0x7c00, %sp
        movw    $hello, %si
        call    puts
#ifdef PANIC
        movw    $0x505, %dx
        movb    $1, %al
        outb    %al, %dx
#endif
        xorw    %bx, %bx                /* device number 0..31 on bus 0 */
scan:
        movzwl  %bx, %ecx
        shll    $11, %ecx
        movl    $0x80000000, %eax
        orl     %ecx, %eax
        movw    $0xcf8, %dx
        outl    %eax, %dx
        movw    $0xcfc, %dx
        inl     %dx, %eax
        cmpl    $0x25ab8086, %eax
        je      found
        incw    %bx
        cmpw    $32, %bx
        jb      scan
        jmp     halt
found:
        movl    $0x80000060, %eax       /* reg 0x60 (16 bit) = 0x0007 */
        orl     %ecx, %eax
        movw    $0xcf8, %dx
        outl    %eax, %dx
        movw    $0xcfc, %dx
        movw    $0x0007, %ax
        outw    %ax, %dx
        movl    $0x80000068, %eax       /* reg 0x68 (8 bit) = 0x02: enable */
        orl     %ecx, %eax
        movw    $0xcf8, %dx
        outl    %eax, %dx
        movw    $0xcfc, %dx
        movb    $0x02, %al
        outb    %al, %dx
        movw    $armed, %si
        call    puts
halt:
        cli
        hlt
        jmp     halt

puts:                                   /* print the NUL-terminated string at %si on COM1 */
        lodsb
        testb   %al, %al
        jz      1f
        movw    $0x3f8, %dx
        outb    %al, %dx
        jmp     puts
1:      ret

hello:  .asciz  "petguard wdtboot\r\n"
armed:  .asciz  "i6300esb armed, not feeding it\r\n"

        .org    510
        .word   0xaa55
