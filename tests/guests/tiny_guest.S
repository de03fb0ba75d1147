/* A tiny 64-bit "kernel" for tests on hosts whose /dev/kvm can only run a few
 * thousand instructions (see shared/notes/environment.md). atoll-vmm loads it as
 * a bzImage and enters it at 0x100200 in long mode (boot protocol 64-bit entry).
 * BEHAVIOUR (assembler symbol): 0 idles and powers off through ACPI S5 when the
 * power button is pressed; 1 halts forever with interrupts off; 2 triple-faults. */
    .code64
    .text
    .globl _start
_start:
    .org 0x200                      /* the 64-bit entry point */
entry:
    cli
    .if BEHAVIOUR == 2
    lidt idt_empty(%rip)
    ud2                             /* #UD with no IDT: #DF, then a triple fault */
    .endif
    .if BEHAVIOUR == 1
1:  hlt
    jmp 1b
    .endif
    /* Mask the 8259s: only the local APIC timer wakes us. */
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    /* Every IDT vector points at one handler that acknowledges the local APIC. */
    lea idt(%rip), %rdi
    lea interrupt_handler(%rip), %rax
    mov $256, %ecx
2:  mov %ax, (%rdi)                 /* offset 15:0 */
    movw $0x10, 2(%rdi)             /* __BOOT_CS */
    movw $0x8e00, 4(%rdi)           /* present, 64-bit interrupt gate */
    mov %rax, %rdx
    shr $16, %rdx
    mov %dx, 6(%rdi)                /* offset 31:16 */
    movl $0, 8(%rdi)                /* offset 63:32 */
    movl $0, 12(%rdi)
    add $16, %rdi
    loop 2b
    lidt idt_descriptor(%rip)
    /* Local APIC (xAPIC at 0xfee00000): enable, periodic timer every 10 ms. */
    mov $0xfee00000, %rbx
    movl $0x1ff, 0xf0(%rbx)         /* spurious vector register: enable, vector 0xff */
    movl $0xb, 0x3e0(%rbx)          /* divide by 1 */
    movl $0x20020, 0x320(%rbx)      /* LVT timer: periodic, vector 0x20 */
    movl $10000000, 0x380(%rbx)     /* initial count */
    /* ACPI PM1a event block at 0x600: wait for the power button status bit. */
wait_for_button:
    sti
    hlt
    cli
    mov $0x600, %dx
    in %dx, %ax
    test $0x100, %ax
    jz wait_for_button
    /* PM1a control at 0x604: SLP_TYP 5 (S5, as the DSDT's \_S5) with SLP_EN. */
    mov $0x604, %dx
    mov $0x3400, %ax
    out %ax, %dx
3:  hlt
    jmp 3b

interrupt_handler:
    push %rax
    mov $0xfee000b0, %rax
    movl $0, (%rax)                 /* end of interrupt */
    pop %rax
    iretq

    .balign 16
idt_descriptor:
    .word 256 * 16 - 1
    .quad idt
idt_empty:
    .word 0
    .quad 0
    .balign 16
idt:
    .fill 256 * 16, 1, 0
