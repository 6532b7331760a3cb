/*
 * svmrun: runs lowered svm-dsl scenarios under the kvm_amd of the kernel it boots with, one fresh VM per case.
 *
 * Input (stdin, one directive a line; the Python backend writes it, dsl/backends/qemu_kvm/lower.py):
 *   case ID                       start a case: a fresh VM, one vCPU, MEM_SIZE bytes of zeroed guest memory
 *   mem GPA HEX                   guest memory contents
 *   seg NAME SEL BASE LIMIT TYPE S DPL DB L G      a segment register (cs ds es fs gs ss tr ldt), present
 *   table gdt|idt BASE LIMIT      descriptor-table registers
 *   cr CR0 CR3 CR4 EFER           control registers
 *   handler GPA VECTOR            a HLT at GPA means: the handler of VECTOR is running
 *   warm RIP RSP                  run from RIP until a HLT (touches pages so that they are mapped), trace dropped
 *   regs RIP RSP RFLAGS           the scenario's first state
 *   event KIND VECTOR EV ERR      userspace injects an event (KVM_SET_VCPU_EVENTS): KIND exception, irq, soft, nmi
 *   shadow KIND                   the interrupt shadow (KVM_X86_SHADOW_INT_* bits: 1 MOV SS, 2 STI)
 *   run MAX_EXITS                 run until a HLT outside the handlers, MAX_EXITS userspace exits, or the alarm
 * Output (stdout, one record a line; dsl/backends/qemu_kvm/report.py reads it):
 *   begin ID / deliver VECTOR RSP CR2 FRAMEHEX / stop KIND RIP / trace TEXT / error TEXT / end ID
 * The frame is FRAME_BYTES bytes from the handler's stack pointer; the backend interprets it per mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE 0x400000u   /* 4 MiB: every address the backend lays out lies below */
#define MAX_HANDLERS 256
#define FRAME_BYTES 48
#define CASE_SECONDS 3       /* a livelocked KVM_RUN is cut off by SIGALRM (EINTR) */
#define LINE_MAX_LEN 16384
#define TRACE_FILE "/sys/kernel/tracing/trace"
#define HLT_LEN 1
#define EFER_LMA (1ull << 10)

struct handler { uint64_t gpa; int vector; };

struct vcase {
	int vm, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	struct kvm_sregs sregs;
	struct handler handlers[MAX_HANDLERS];
	int handler_count;
};

static int kvm_fd;
static int run_size;

static void on_alarm(int sig) { (void)sig; }

static void clear_trace(void)
{
	int fd = open(TRACE_FILE, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
}

static void print_trace(void)
{
	FILE *f = fopen(TRACE_FILE, "r");
	char line[1024];
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#')
			continue;
		char *event = strstr(line, " kvm_");
		if (event)
			printf("trace %s", event + 1);
	}
	fclose(f);
}

static void close_case(struct vcase *c)
{
	if (c->run)
		munmap(c->run, run_size);
	if (c->mem)
		munmap(c->mem, MEM_SIZE);
	if (c->vcpu >= 0)
		close(c->vcpu);
	if (c->vm >= 0)
		close(c->vm);
	memset(c, 0, sizeof *c);
	c->vm = c->vcpu = -1;
}

static int open_case(struct vcase *c)
{
	c->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (c->vm < 0)
		return -1;
	c->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return -1;
	}
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)c->mem,
	};
	if (ioctl(c->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -1;
	c->vcpu = ioctl(c->vm, KVM_CREATE_VCPU, 0);
	if (c->vcpu < 0)
		return -1;
	c->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->vcpu, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return -1;
	}
	return ioctl(c->vcpu, KVM_GET_SREGS, &c->sregs);
}

static int hex_nibble(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int put_memory(struct vcase *c, uint64_t gpa, const char *hex)
{
	size_t n = strspn(hex, "0123456789abcdef") / 2;
	if (gpa + n > MEM_SIZE)
		return -1;
	for (size_t i = 0; i < n; i++)
		c->mem[gpa + i] = (uint8_t)(hex_nibble(hex[2 * i]) << 4 | hex_nibble(hex[2 * i + 1]));
	return 0;
}

static struct kvm_segment *segment(struct vcase *c, const char *name)
{
	static const char *names[] = {"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"};
	struct kvm_segment *segs[] = {&c->sregs.cs, &c->sregs.ds, &c->sregs.es, &c->sregs.fs,
				      &c->sregs.gs, &c->sregs.ss, &c->sregs.tr, &c->sregs.ldt};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(names[i], name))
			return segs[i];
	return NULL;
}

static int handler_vector(struct vcase *c, uint64_t gpa)
{
	for (int i = 0; i < c->handler_count; i++)
		if (c->handlers[i].gpa == gpa)
			return c->handlers[i].vector;
	return -1;
}

static uint64_t linear_rip(struct vcase *c, uint64_t rip)
{
	struct kvm_sregs s;
	if (ioctl(c->vcpu, KVM_GET_SREGS, &s) < 0)
		return rip;
	return (s.efer & EFER_LMA && s.cs.l) ? rip : (uint32_t)(s.cs.base + rip);
}

/* Linear stack address to guest-physical: the backend identity-maps what it pages, so only SS.base counts. */
static void report_delivery(struct vcase *c, int vector)
{
	struct kvm_regs regs;
	struct kvm_sregs s;
	ioctl(c->vcpu, KVM_GET_REGS, &regs);
	ioctl(c->vcpu, KVM_GET_SREGS, &s);
	uint64_t sp = (s.efer & EFER_LMA) ? regs.rsp : (uint32_t)(s.ss.base + (s.ss.db ? (uint32_t)regs.rsp : (uint16_t)regs.rsp));
	printf("deliver %d 0x%llx 0x%llx ", vector, (unsigned long long)regs.rsp, (unsigned long long)s.cr2);
	for (int i = 0; i < FRAME_BYTES; i++)
		printf("%02x", sp + i < MEM_SIZE ? c->mem[sp + i] : 0);
	printf("\n");
}

/* Runs until a HLT outside the handlers. Returns 0 then, -1 on anything else (already reported). */
static int run_vcpu(struct vcase *c, int max_exits, int report)
{
	alarm(CASE_SECONDS);
	for (int exits = 0; exits < max_exits; exits++) {
		if (ioctl(c->vcpu, KVM_RUN, 0) < 0) {
			alarm(0);
			if (report)
				printf("stop %s 0\n", errno == EINTR ? "timeout" : "run-error");
			return -1;
		}
		struct kvm_regs regs;
		ioctl(c->vcpu, KVM_GET_REGS, &regs);
		uint64_t hlt_at = linear_rip(c, regs.rip - HLT_LEN);
		if (c->run->exit_reason != KVM_EXIT_HLT) {
			alarm(0);
			if (report)
				printf("stop exit-%u 0x%llx\n", c->run->exit_reason, (unsigned long long)regs.rip);
			return -1;
		}
		int vector = handler_vector(c, hlt_at);
		if (vector < 0) {
			alarm(0);
			if (report)
				printf("stop hlt 0x%llx\n", (unsigned long long)(regs.rip - HLT_LEN));
			return 0;
		}
		if (report)
			report_delivery(c, vector);
	}
	alarm(0);
	if (report)
		printf("stop limit 0\n");
	return -1;
}

/* As QEMU does for a userspace irqchip: the event goes into KVM's queue as already injected. */
static int inject(struct vcase *c, const char *kind, int vector, int has_error, uint32_t error_code)
{
	struct kvm_vcpu_events events;
	if (ioctl(c->vcpu, KVM_GET_VCPU_EVENTS, &events) < 0)
		return -1;
	events.flags = 0;
	if (!strcmp(kind, "exception")) {
		events.exception.injected = 1;
		events.exception.nr = (uint8_t)vector;
		events.exception.has_error_code = (uint8_t)has_error;
		events.exception.error_code = error_code;
	} else if (!strcmp(kind, "irq") || !strcmp(kind, "soft")) {
		events.interrupt.injected = 1;
		events.interrupt.nr = (uint8_t)vector;
		events.interrupt.soft = !strcmp(kind, "soft");
	} else if (!strcmp(kind, "nmi")) {
		events.nmi.injected = 1;
	} else {
		errno = EINVAL;
		return -1;
	}
	return ioctl(c->vcpu, KVM_SET_VCPU_EVENTS, &events);
}

static int directive(struct vcase *c, char *line)
{
	char word[16], name[16], hex[LINE_MAX_LEN];
	unsigned long long a, b, d, e;
	unsigned int sel, type, s, dpl, db, l, g;
	int vector, max_exits;

	if (sscanf(line, "%15s", word) != 1)
		return 0;
	if (!strcmp(word, "case")) {
		close_case(c);
		printf("begin %s", line + 5);
		return open_case(c);
	}
	if (c->vm < 0)
		return -1;
	if (!strcmp(word, "mem") && sscanf(line, "mem %llx %16383s", &a, hex) == 2)
		return put_memory(c, a, hex);
	if (!strcmp(word, "seg") &&
	    sscanf(line, "seg %15s %x %llx %llx %x %x %x %x %x %x", name, &sel, &a, &b, &type, &s, &dpl, &db, &l, &g) == 10) {
		struct kvm_segment *seg = segment(c, name);
		if (!seg)
			return -1;
		*seg = (struct kvm_segment){.base = a, .limit = (uint32_t)b, .selector = (uint16_t)sel, .type = (uint8_t)type,
					    .present = 1, .dpl = (uint8_t)dpl, .db = (uint8_t)db, .s = (uint8_t)s,
					    .l = (uint8_t)l, .g = (uint8_t)g};
		return 0;
	}
	if (!strcmp(word, "table") && sscanf(line, "table %15s %llx %llx", name, &a, &b) == 3) {
		struct kvm_dtable *t = !strcmp(name, "gdt") ? &c->sregs.gdt : &c->sregs.idt;
		t->base = a;
		t->limit = (uint16_t)b;
		return 0;
	}
	if (!strcmp(word, "cr") && sscanf(line, "cr %llx %llx %llx %llx", &a, &b, &d, &e) == 4) {
		c->sregs.cr0 = a;
		c->sregs.cr3 = b;
		c->sregs.cr4 = d;
		c->sregs.efer = e;
		return ioctl(c->vcpu, KVM_SET_SREGS, &c->sregs);
	}
	if (!strcmp(word, "handler") && sscanf(line, "handler %llx %d", &a, &vector) == 2) {
		if (c->handler_count == MAX_HANDLERS)
			return -1;
		c->handlers[c->handler_count++] = (struct handler){a, vector};
		return 0;
	}
	if (!strcmp(word, "warm") && sscanf(line, "warm %llx %llx", &a, &b) == 2) {
		struct kvm_regs regs = {.rip = a, .rsp = b, .rflags = 2};
		if (ioctl(c->vcpu, KVM_SET_REGS, &regs) < 0 || run_vcpu(c, 8, 0) < 0)
			return -1;
		clear_trace();
		return 0;
	}
	if (!strcmp(word, "regs") && sscanf(line, "regs %llx %llx %llx", &a, &b, &d) == 3) {
		struct kvm_regs regs = {.rip = a, .rsp = b, .rflags = d};
		clear_trace();
		return ioctl(c->vcpu, KVM_SET_REGS, &regs);
	}
	if (!strcmp(word, "shadow") && sscanf(line, "shadow %d", &vector) == 1) {
		struct kvm_vcpu_events events;
		if (ioctl(c->vcpu, KVM_GET_VCPU_EVENTS, &events) < 0)
			return -1;
		events.flags = KVM_VCPUEVENT_VALID_SHADOW;
		events.interrupt.shadow = (uint8_t)vector;
		return ioctl(c->vcpu, KVM_SET_VCPU_EVENTS, &events);
	}
	if (!strcmp(word, "event") && sscanf(line, "event %15s %d %llx %llx", name, &vector, &a, &b) == 4)
		return inject(c, name, vector, (int)a, (uint32_t)b);
	if (!strcmp(word, "run") && sscanf(line, "run %d", &max_exits) == 1) {
		run_vcpu(c, max_exits, 1);
		print_trace();
		printf("end\n");
		fflush(stdout);
		close_case(c);
		return 0;
	}
	return -1;
}

int main(void)
{
	static char line[LINE_MAX_LEN + 64];
	struct vcase c = {.vm = -1, .vcpu = -1};
	struct sigaction sa = {.sa_handler = on_alarm};

	sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: KVM_RUN returns EINTR */
	kvm_fd = open("/dev/kvm", O_RDWR);
	if (kvm_fd < 0) {
		printf("error open /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	int skipping = 0; /* after an error, the rest of that case is ignored */
	while (fgets(line, sizeof line, stdin)) {
		if (skipping && strncmp(line, "case ", 5))
			continue;
		skipping = 0;
		if (directive(&c, line) < 0) {
			skipping = 1;
			printf("error %s: %s", strerror(errno), line);
			printf("end\n");
			close_case(&c);
		}
	}
	close_case(&c);
	printf("done\n");
	return 0;
}
