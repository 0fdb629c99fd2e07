// `cache-io demo`: placeholder until the server lands.
export async function run(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
