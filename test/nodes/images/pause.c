/* The pod sandbox's pause process for the test nodes: sleeps until SIGTERM/SIGINT. */
#include <signal.h>
#include <unistd.h>
static void die(int s) { (void)s; _exit(0); }
int main(void) {
  signal(SIGTERM, die);
  signal(SIGINT, die);
  for (;;) pause();
}
