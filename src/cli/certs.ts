// `cache-io certs` and `cache-io certs install`: placeholders until they land.
export async function generate(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
export async function install(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
