// Wire format of what an agent (or `booty deploy|capture --report URL`) tells the server while it
// works. Sent as JSON to `POST {server}/api/machines/<aa-bb-cc-dd-ee-ff>/events`, one event or an
// array of events per request. The server keeps the last state per machine and the log.

export type Phase =
  | 'booting' | 'modules' | 'network' | 'dhcp' | 'fetching-action' | 'preflight' | 'writing'
  | 'verifying' | 'growing' | 'configuring' | 'capturing' | 'uploading' | 'rebooting'
  | 'powering-off' | 'shell' | 'done' | 'failed' | 'inspecting';

export type AgentEvent =
  | { type: 'phase'; time: string; phase: Phase; detail?: string }
  | {
      type: 'progress'; time: string; phase: Phase;
      /** bytes of uncompressed image data written (deploy) or read (capture) */
      bytes: number;
      /** total uncompressed bytes, when known */
      total?: number;
      /** bytes moved over the network (compressed) */
      wireBytes?: number;
      /** bytes per second (uncompressed), smoothed */
      rate: number;
      etaSeconds?: number;
      /** deploy: connections that continued the download after a network fault */
      resumes?: number;
      /** deploy: times it started over from byte 0 because the image changed on the server */
      restarts?: number;
    }
  | { type: 'log'; time: string; level: 'debug' | 'info' | 'warn' | 'error'; message: string }
  | {
      type: 'result'; time: string; ok: boolean; action: string;
      /** BootyError.code and the operator sentence when !ok */
      code?: string; message?: string; diskState?: string;
      bytes?: number; seconds?: number; sha256?: string;
      /** deploy: resumes after network faults, restarts from byte 0 (see progress) */
      resumes?: number; restarts?: number;
      warning?: string;
      /** wipe: the method that actually ran ("secure (nvme format, user data erase)"), what the
       *  verification read, and whether it proved zeros */
      method?: string; verification?: string; verified?: boolean;
    };
