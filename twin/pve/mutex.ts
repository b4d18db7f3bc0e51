/** One holder at a time, in call order: the twin's `lock_config` (pve-guest-common AbstractConfig.pm, a flock per guest). */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(critical: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await critical();
    } finally {
      release();
    }
  }
}
