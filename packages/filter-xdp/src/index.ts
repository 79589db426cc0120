/**
 * @vipfarm/filter-xdp: the XDP farm filter (C, compiled object committed), its libbpf
 * loader, and a TypeScript model of the same decision for the simulator.
 */
export { Reason, REASONS, reasonNames, XdpAction, actionOfReason, xdpCodeOfAction } from "./verdict.ts"
export type { Action, ReasonCode, ReasonName } from "./verdict.ts"
export { Proto, macBytes, macText } from "./types.ts"
export type { FilterConfig, FlowTuple, VipEntry, VipRule } from "./types.ts"
export {
  addrKey, countedVip, countVip, decide, emptyFlows, emptyParsed, flowKey, modelTables, newDecision, parsePacket, UDP_REFRESH_NS
} from "./model.ts"
export type { Decision, ModelEnv, ModelFlows, ModelTables, ModelVipCounters, Parsed, ParsedKind, TcpSocketState } from "./model.ts"
export { decideFrame } from "./frame.ts"
export type { FrameDecision } from "./frame.ts"
export {
  acquireFilter, attachedProgram, attachPass, BpfError, FILTER_OBJECT, FilterHandle, FLOOR_OBJECT, loadFilter, ownFarmProgram,
  PASS_OBJECT, XdpAttachRefused, XdpFilter
} from "./loader.ts"
export type {
  AttachedProgram, AttachOptions, AttachOutcome, FlowEntry, LoadOptions, TestRunResult, VerdictCounters, VipCounters, XdpFilterOptions,
  XdpMode
} from "./loader.ts"
export { chooseMode, linkFacts, nativeBlocker, XdpModeRefused } from "./attachMode.ts"
export type { LinkFacts, ModeChoice, XdpModeSetting } from "./attachMode.ts"
export {
  CONFIG_SIZE, decodeFlowKey, decodeVipKey, encodeConfig, encodeFlowKey, encodeVipKey, encodeVipValue,
  FLOW_KEY_SIZE, MAX_RULES, VIP_KEY_SIZE, VIP_VALUE_SIZE, vipKey
} from "./encode.ts"
export * as Packet from "./packet.ts"
