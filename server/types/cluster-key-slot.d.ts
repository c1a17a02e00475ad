/** The Redis Cluster hash slot of a key (CRC16 of its hash tag, or of the key), 0..16383. */
declare module 'cluster-key-slot' {
  function calculateSlot(key: string | Buffer): number;
  namespace calculateSlot {
    /** The slot all keys share, or -1 when they do not share one. */
    function generateMulti(keys: ReadonlyArray<string | Buffer>): number;
  }
  export default calculateSlot;
}
