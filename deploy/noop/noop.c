/* The pre-pull DaemonSet runs this in every pre-pulled image: it needs no shell, no
 * libc and no files in the image, and exits 0. Built statically in the Dockerfile:
 *   gcc -static -Os -s -o noop noop.c */
int main(void) { return 0; }
