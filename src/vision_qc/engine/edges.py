"""Stage 2, edges: find the bead's two edges on every profile at once, to sub-pixel precision.

Profiles come (M, N), a row per sample offset across the path, a column per station. Step 1
is one OpenCV filter (on uint8 profiles, a compiled pass with its floats); steps 2–6 are
compiled kernels (Numba, :mod:`._jit`): the passes over whole rows of stations (cumulative
sums, the locator's scan over centres and scales) vectorise across stations, and the work
round each edge (the walk, the fit) is one compiled loop over stations that touches a few
dozen samples each — no interpreter step per station, and no (N × M) temporaries.

Per station:

1. Smooth over a few neighbouring stations and a little along the profile; flip dark beads so
   that the bead is always brighter than its surroundings (one separable filter).
   Steps 2 and 3 run on samples 1 px apart (every other one at the default 0.5 px step,
   every one at 1 px): they only decide where the bead and its edges lie to a sample or so;
   steps 4 to 6 use the full profile in a small window round each edge. Every window,
   tolerance and smoothing is set in px, so the engine runs at any step from 0.5 to 1 px
   (see "The sample step" below).
2. Locate the bead: on a dark bead, first close dips up to 0.3 × the nominal width (its
   bright specular ridge, which splits it in two lobes). Then a difference of boxes at a few
   widths (inner part of the bead minus the brighter of its two flanks) gives the centre and
   the bead's contrast. A step such as the glass edge or the frit's inner edge has one bright
   flank and scores nothing. A box wider than nominal must beat the best narrower one by
   half again: its far flanks can land beyond a terrace beside the bead (the glass between
   a dark bead and the glass edge), and it then takes bead and terrace for one wide bead.
   The locator searches every 2nd station; each station then re-checks its two located
   neighbours' centres on its own profile, with the same margin between a wider box and a
   narrower one, so the contrast (which decides presence, and so the gap ends) stays per
   station.
3. On each side, walk outwards from a quarter width inside the bead: the local background is
   where the profile turns flat, the edge sample where the profile has come down to 20 % of
   the bead's height above it. Each is refined to the gradient peak within 1 px (farther in,
   a dim, shaded flank keeps steepening towards the crest and would pull the edge inwards).
   An edge is suspect where a dark speck on or beside the flank may have fooled the walk:
   the background it took is a narrow dip (the profile rises again within 4 px farther
   out), the profile sinks below that background between it and the edge, there is no
   flat background at all, or the walk passed a shoulder on its way out: a stretch flat by
   its own test, below the highest point so far by more than the tolerance, refused as the
   background only because the profile had not yet come down half way. That is the top of
   a dark speck touching the flank with no dip between (nothing for the closing of step 2
   to mark): the walk crosses it and takes the background beyond the speck. A suspect
   edge more than 1 px from the local trend of its side's unsuspect edges over ±10
   stations (a robust line, so that an edge moving along an offset or width ramp is
   followed, not cut across by a flat median) takes that trend: the neighbours along the
   path see the edge the speck hides. On a dark bead an edge is also
   suspect where the closing of step 2 raised the profile between the walk's start and the
   edge farther out than the ridge lies: it bridges a dark speck just beside the flank
   (dark dust is as dark as the bead) as readily as the ridge, and the walk then runs on
   across the speck.
   A dark speck as dark as the bead that blends into the flank (no dip, no shoulder, close
   enough to pass for the ridge's bridge) passes all of these: its edge stands 2-13 px out
   over 4-6 stations (3-4 mm "wide" calls: 6 of the 32 false alarms of normal dark seed 7,
   5 of 17 on seed 8, 2 of its 5 false rejects). A speck is a compact blob, a wide stretch
   of bead a long bulge of both edges (or a ramp out to one): so an edge that stands out of
   its side's median over ±10 stations by more than 1 px over at most 9 stations (a speck
   up to 5 px across, stations up to 1 px apart, the smoothing along the path, and the
   blur, which spreads a speck's pull on the edge ~1 px either side), alone
   (no other station of its side within 10 strays from its median), while the other side's
   edge stays on its own median there (or strays by at most ``_SPECK_PULL`` = 0.34 of this
   side's excursion: a speck pulls the locator's box and centre, and the other walk with
   them, by a fraction, where a widening bead moves both edges alike; such an edge is marked
   suspect too. Normal dark s10 ws_0141: the other edge 1.4 px off against 5-6 px, a 3.1 mm
   "wide" false reject. On 21 sets: normal dark s10 false rejects 1 -> 0, false alarms 0.010
   -> 0.005; hard dark s8 32 -> 31 and 1.120 -> 1.105; hard dark s10 and hard bright s8 one
   false alarm fewer each; nothing else, no escape), and whose side lies at the same level
   (±1 px) the 9 stations before and after, is suspect (:func:`_speck_runs`); so is a
   bright speck's on a bright bead. Measured (seed 7 / held-out seed 8, after the glare rule of
   ``inspector.PRESENCE_CONTRAST``): normal dark false alarms 0.115 → 0.085 and 0.090 →
   0.070 per image, false rejects 4 → 2 and 2 → 2; normal bright s8 false rejects 1 → 0
   (a bright speck read 3 mm too wide), false alarms 0.020 → 0.005; hard bright false
   alarms 1.320 → 1.290 and 1.335 → 1.310 (false rejects 31 → 31, 30 → 28), hard dark
   6.035 → 5.910 and 6.215 → 6.090 (54 → 51, 56 → 54), width error p95 down 0.01-0.05 px
   there; clean sets unchanged, no escape, no defect lost. Without "alone", a wide defect
   whose left edge flickers between two structures lost its wide call (normal dark s7,
   ws_0182); without "the same level before and after", the start of a wide ramp was cut
   (two wide defects split in two). Not caught: a speck beside a defect or a glare stripe
   (its neighbours stray too), a speck on both sides at once.
   Where the locator's box is narrower than 0.75 × nominal, a background the profile
   falls from again (by more than the tolerance) within 4 px farther out is a terrace, and
   the walk goes on to the next flat stretch below it: a box that narrow may stand on one
   lobe of a bead whose other half is lower (a lit half, or a glare ramp across the bead),
   with its flank on that half, and the walk would stop there (a long "thin" call on an OK
   bead). A thin bead with a step less than ~4 px beyond its edge (a frit or glass edge,
   a speck) is read out to that step instead; measured, no thin defect was lost on any
   set (thin defects run 8 mm and more).
   On a bright bead the same fall beyond a background, at a box of any width, may be a
   blob's rim: the blob's rounded dome joined to the crest falls gently (a few grey levels
   per px, flat by the walk's test) and the walk took it for the background, so a blob up
   to 20 mm wide was read at 12-13 mm and its defect split in two (an escape risk). A
   bright speck's flat top on the flank makes the same terrace on one profile. A speck is a
   disc: it reaches no farther along the path than across, so the terrace is bead material
   where, as many stations away as the terrace is wide (plus the flatness span and the
   smoothing along the path), on either side, the profile is still above half way from
   the lower stretch to the terrace at the terrace and below it at the lower stretch (the
   centre taken from those two stations: a speck pulls the locator's centre towards
   itself); and the lower stretch is no dip the profile climbs out of, back to the
   terrace's level and flat there (a dark speck's bottom beside the true background). The
   walk then takes the lower stretch. Not on frames short of contrast (their wide
   flatness span passes a glare ramp's slope for a terrace: hard bright seed 7 false
   rejects 33 → 38), nor on dark beads (their substrate has terraces of its own, see
   below). Measured (seed 7, held-out seed 8): the posed bright twins' false alarms 0.010 →
   0.005 per image (the split blob of ws_0074 now one defect, its worst station under-read
   7.95 → 4.25 mm); per-defect median width error on normal bright seed 7 wide stretches
   better on 4 defects (e.g. 2.48 → 1.53 mm), worse on none; hard bright false alarms
   1.565 → 1.585 and 1.505 → 1.550 per image (glare); everything else unchanged. Not
   caught: a dome too low for its fall to the rim to exceed the walk's tolerance (in the
   synthetic test, a dome under ~45 % of the bead's height at the flank is read short).
   Cost: the walk kernel 1.34 → 1.67 ms on the 2448×2048 bench frame, dark beads too
   (where the rule never runs: the larger walk compiles slower).
   The converse on a dark bead: where a box wider than 1.25 × nominal won, the walk starts a
   quarter of the nominal width out, and a shoulder that stays flat for 6 px is a terrace
   beside the bead and is taken as the background. Glass between a dark bead and the glass
   edge is such a terrace (once flipped, above the fixture beyond the glass edge and below
   the bead): the wide box takes bead and terrace for one wide bead, and the walk, starting
   on the terrace, ran to the glass edge (20 mm "wide" calls on OK parts). A dark bead's own
   top is its lobes (its ridge is bridged by the closing); on a bright bead the specular
   ridge stands above the body, which is then a shoulder, so bright beads keep the plain
   walk (the rule on bright beads too made 3 escapes on clean bright, seed 7). Cost,
   measured on the dark sets: the widest beads (about 2 × nominal) can be read short of a
   flat outer band (median width of 20–24 mm defects 1–6 mm lower), and 2 of 62 wide
   defects on hard dark seed 7 lost up to 6 % of their flagged stations; none was lost.
   Not caught: a terrace so high (about 0.7 of the bead's height) that the wide box
   centres on the bead's edge, so that the walk starts on the terrace.
   A dark bead laid off its path near the frit's edge leaves a narrow terrace of frit (2-3
   px) between its flank and the step beyond (the glass edge, up to the fixture): the walk
   ran down the bead's flank, over the terrace, too short to be flat by its test, and over
   the step to the fixture, which it took for the background; its edge, a fraction of the
   whole fall, landed on that step (a "wide" call on an offset stretch, 3-4 px too wide:
   most of the clean dark false alarms). The bead lies on one substrate, which the other
   side's background shows. So where one side's background lies beyond the other side's
   (once flipped, lower by more than the tolerance), that side's walk is redone with the
   other side's background as its own once the profile has come down to it: what lies
   farther down is another structure's step. On a single step (the bead straight onto a
   brighter glass) the crossing moves a fraction of a px along the same flank and the
   gradient peak stays. Such an edge is suspect (its background is not one found flat on
   its own side, as an edge with no flat background at all): it keeps step 5's edge and,
   more than 1 px off its side's trend, takes the trend. Not when the other side's edge is
   suspect, nor on a narrow box (its walks may stop on a lobe of the bead: the other side's
   background is then not known to be the substrate; measured, with narrow boxes too, normal
   dark s7 false alarms 0.170 → 0.225 per image), nor on bright beads (beside a bright bead
   the frit is the darkest level: the glass or the fixture beyond it is a rise, which the
   walk's dip test flags). Measured (seed 7, held-out seed 8): clean dark false alarms 0.035 →
   0.000 and 0.045 → 0.015 per image, normal dark 0.205 → 0.170 and 0.150 → 0.085 (false
   rejects 5 → 5, 3 → 2), hard dark 7.39 → 6.54 and 7.71 → 6.84 (55 → 54, 57 → 56); bright
   sets unchanged, escapes 0. A step closer than ~2 σ to the bead's edge (a terrace under
   ~2 px) can still pull the gradient peak (step 4) onto itself.
4. Each peak is located to sub-pixel precision with a three-point Gaussian fit, which also
   gives the edge's blur σ. The gradient is a difference over about 1 px (two samples 0.5 px
   apart either side, or neighbouring samples 1 px apart, which then lies between them).
5. The gradient peak of a blurred step is the step only if the profile is flat inside it. A
   rounded bead keeps rising inside its edge (shading), which pulls the gradient peak inwards
   by ``b σ² / H`` (step H, inner slope b, blur σ: the peak of ``H φ(z)/σ + b Φ(z)``). That
   shift is measured per edge from the profile itself and removed, so the edge lands where the
   profile leaves the background: the footprint. The blur is the optics' and about the same
   over the frame, while the three-point fit of one edge scatters: an edge whose fit failed
   or gave a σ more than 1.5× off the frame's median (about half of them; always a speck or
   a ramp without a clear peak) is corrected with the median σ, since the correction reads
   the profile at multiples of σ. The shift itself is read off a few samples, and on a
   noisy frame it scatters from station to station (a faint step under a steep flank gives a
   small H and a wild shift: 1.5 px at a station of a `hard` frame whose neighbours need
   0.3) while the light and the bead's shape change slowly along the path. So where the
   shift's station-to-station scatter exceeds ``_SHADE_SCATTER`` (0.01 px; clean frames
   0.005–0.011, normal 0.015–0.09, hard 0.05–0.15) each edge takes the median shift of its
   side over k stations, k ∝ the scatter squared, at most ``_SHADE_STATIONS``; a wide window
   is read at every 2nd–4th station. Measured on the accuracy sets (seeds 7 / 8): clean
   frames unchanged; `normal` width error p95 0.77 → 0.68 px (bright), 0.67 → 0.65 (dark);
   `hard` false rejects 46 → 39 and 44 → 34 (bright), 78 → 72 and 70 → 65 (dark), false
   alarms per image 2.2 → 1.7 and 22 → 14. A median, not a mean: a mean spreads a wild
   shift to its neighbours (normal bright mean-width error 0.09 → 0.10 mm with one).
6. Each edge is then placed where a blurred step with the flank's shading as a ramp fits
   the profile best: ``b + S Φ((x - e)/σ) + s σ G((x - e)/σ)`` (``G`` Φ's integral), fitted
   from ``_STEP_OUT_PX`` outside to ``_STEP_IN_SIGMAS`` σ inside the edge (a window in units
   of σ: shorter, and a blurred ramp passes for the step on a blurrier frame). On a bright
   bead fitted with the straight ramp (no cap curvature, below) at the default 0.5 px step,
   ``_STEP_IN_SIGMAS_LINE`` (3) σ: the cap's shading is curved and a highlight on the lit
   flank rises 3-4 px inside the edge, and over 4 σ the ramp's slope is more theirs, the edge
   landing inside the footprint (steeper caps the more: normal bright seed 7, mean-width
   error by contact angle 40-45° +0.14 px, 60-65° -0.25 px). Which edges the model may move
   is still decided at 4 σ (a bead at least 8 σ wide): at 3 σ the edges where a thin
   stretch begins and ends moved too and read wider than they are (normal bright s7: +0.22
   px against +0.08, median), and short thin defects were lost (3 mm plateaus, normal
   bright: found in 13 → 7 of 20 parts). Measured on 21 sets (29 November): normal bright width
   error median / p95 0.115-0.129 / 0.414-0.444 → 0.104-0.112 / 0.360-0.392 px, mean-width
   error 0.084-0.099 → 0.078-0.087 mm; hard bright one false reject more (s7, ws_0136: two
   "wide" calls where the bead's rim is as bright as the frit beside it), false alarms
   +0.015-0.030 per image, width median 0.40-0.42 → 0.41-0.43 px; dark and clean frames
   unchanged (3.5 σ: half the gain; 2.5 σ: medians up again; 3 σ on every frame: clean and
   dark worse, clean bright 0.053 / 0.211 → 0.078 / 0.305 px). It is one
   Gauss–Newton step from step 5's edge, linearised within a quarter px of it (the sample
   nearest it at 0.5 px; see :func:`_step_phases`) (the basis with
   ``φ``, the step's derivative along e, is linear: the move is ``-σ c_φ / c_Φ``, at most
   ``_STEP_MOVE_PX``), from tables built once per sample step. The blur is the frame's: the
   vertex of the median residual over six candidates, read on the flatter half of the flanks
   of ~``_STEP_SIGMA_STATIONS`` stations (where the model is closest to exact; an edge moves
   ~0.7 px per px of blur error) — or, given ``blur_px`` (the caller's, measured on a clean
   step beside the bead: :mod:`vision_qc.engine.blur`), that one: on a dark bead always (its
   rim is darker than its crest, no ramp, and the flanks' choice ran low by 0.14 px on the
   median `hard` frame and up to 0.6 px, each edge then outside the footprint); on a bright
   bead with the cap's curvature (below) where the frame is clear of the noise, elsewhere
   only where the flanks' choice is more than ``_BLUR_STRAY_PX`` (0.15 px) from it (given
   it always with the straight ramp, clean bright width error median 0.088 -> 0.113 px: the
   flanks' slightly low blur takes up part of the cap's curved shading; where the two differ
   by more than 0.15 px the flanks' choice is a misfit, hard bright). Measured with the clean
   step's blur (21 sets, README): mean-width error on normal dark 0.050-0.058 -> 0.040-0.045
   mm, hard false rejects 28 -> 27, 28 -> 27, 31 -> 25, 23 -> 22 (hard bright s8 28), fewer
   false alarms on every hard set.
   A bright bead's cap shading is curved where the model has a line: it climbs fastest right
   at the rim and levels off towards the crest, the straight ramp takes its average slope
   and the edge lands inside the footprint. So on a bright bead, given the clean step's blur,
   on a frame whose typical contrast is at least ``_CURV_SNR`` times the noise of a sample,
   the model is ``b + S (Φ + κ σ²H) + s σ G + d φ`` (``H`` G's integral: the half-parabola
   ``x²/2`` blurred), κ the cap's curvature relative to the step, per px. κ fitted per edge
   scatters (a fifth basis function on ~18 samples: p95 0.8-1.6 px of edge on noisy frames,
   28 November), but the light and the bead's shape change slowly along the path, so each
   side's κ is the median over ``_CURV_STATIONS`` stations of the per-edge fits (every 4th
   station's: :func:`_curv_kernel`, :func:`_cap_curvature`) and the step's move takes the
   known κ off its coefficients (``S = c_Φ / (1 + κ P_Φ)``, ``d = c_φ - S κ P_φ``, P the
   projection of ``σ²H`` on the model's rows: :func:`_curv_tables`). Not where fewer than
   ``_CURV_ROOMY`` of the edges leave the model room (a bead under 8 blurs wide, read only at
   its stations read wide: they moved out, a false reject more on hard bright s7). Measured
   (29 November, README): clean bright mean-width error 0.054-0.062 -> 0.030-0.035 mm, width
   error median / p95 0.07-0.09 / 0.28-0.30 -> 0.06 / 0.22 px. Not on noisier frames: noise
   biases the fit of κ towards none (an analytic cap: -0.099 without noise, -0.06 at σ 1),
   and on normal bright frames (contrast 26-84 times the noise) the stretches without
   defects read 0.07 px narrow on the median frame with it (+0.03 without). Dark beads keep
   the straight ramp: with κ, normal dark mean width 0.045 -> 0.096 mm (a dark bead's rim is
   darker than its crest, no cap to curve). Suspect edges, edges whose background (beyond 2.5 σ
   out) is not flat by the walk's tolerance (a speck beside the flank), and edges of a bead
   narrower than twice the model's inner reach (its flank would span the crest: a 10 mm bead
   7 px wide at 1.4 mm/px; the taught and the inspected width of one part then differed by
   0.18 mm for 0.06 before) keep step 5's edge.
   Measured per edge against the generator's truth (12 frames per set, seed 7; median error,
   outwards positive, then |error| median / p95, px): clean bright -0.053, 0.076 / 0.312 →
   -0.037, 0.053 / 0.228; normal bright -0.000, 0.126 / 0.486 → -0.001, 0.099 / 0.376; clean
   dark +0.023, 0.057 / 0.168 → +0.018, 0.037 / 0.111; normal dark +0.035, 0.122 / 0.422 →
   +0.008, 0.090 / 0.305 (before the cap's curvature above: a steep bead's dim flank, curved
   where the model had a line, still lay inside the footprint — clean bright, edges whose
   step-5 shift is 0.3–0.5 px: -0.28 → -0.23 px; a quadratic term fitted per edge took most
   of that out, -0.07, but doubled the scatter on noisier and dark frames).

The sample step. Profiles are sampled 0.5 px apart by default (the Inspector's ``step_px``).
At 1 px, sampling takes 0.5 ms less on the 2448×2048 bench frame and the edge finder 0.3-0.5
ms less, but the edges scatter more: measured per edge on 40 frames of clean seed 8, |error|
median 0.046 → 0.063 px (dark), 0.055 → 0.069 (bright) where the normal lies within 10° of an
image axis, and no worse elsewhere. Along an axis every sample of a profile has the station's
sub-pixel place, so the bilinear interpolation's blur (none on a whole pixel, a two-pixel
mean half way) changes from station to station; 0.5 px apart, every profile has both. On the
accuracy sets at 1 px (seeds 7 / 8): no escapes, width error median up to 0.012 px higher on
the bright and normal dark sets, hard bright false rejects 33 → 34 and 32 → 33, false alarms
1.57 → 1.69 and 1.54 → 1.70 per image: 0.5 px stays the default.
The noise factor of the smoothing across (0.66 in :func:`_noise`) is kept at every step:
the samples are correlated by the interpolation, and the smoothed profile's noise, measured
on three frames, is 0.91-0.94 of the raw samples' at 0.5 px and 0.99-1.02 at 1 px, not the
0.65 and 0.97 of independent samples (the noise as the smoothing factor of independent
samples would have it at 1 px sent normal bright frames down the low-contrast path: width
error p95 0.56 → 1.06 px, seed 7).

A bright bead that barely stands out of the noise (its typical contrast under
``_SNR_SMOOTH`` times the noise of one sample: never on the clean and normal presets; the hard
preset's low-contrast beads, 14–22 grey levels over noise σ 3–5) is measured differently,
when the caller allows it (``max_smooth_stations``):

- step 1 averages over more stations, k ∝ the shortfall squared (an edge's position scatters
  as noise / (contrast √k)), up to the caller's cap (:attr:`Edges.smooth_stations`); widths
  are still judged at the usual resolution (a median over the same span lost short wide
  defects: two escapes on the hard preset);
- step 3's flatness test spans up to twice as far, by the shortfall the averaging could not
  make up, so a low bead's gentle flank does not pass for the background;
- steps 4 to 6 are skipped: the edge is the walk's 20 % crossing, located on the full profile
  by a least-squares line over ±2 px. The gradient peak within 1 px and the shading term read
  noise on such flanks (measured on the hard preset: 1.5× the walk's scatter and ~5× the false
  calls). The walk's level is biased by the flank's shape: 0.84 σ outside a bare blurred step,
  and 1–2 px inside a shaded flank whose rim is as dark as the background.

A dark bead takes this path only where even the longest averaging leaves it short of
contrast (the shortfall above 1 at the cap: a typical contrast under ~9× the noise at 12 mm;
the hard preset's low-contrast dark beads on dark frit, 14–20 grey levels, read 4–11×; no
`clean` or `normal` dark frame, `normal` from 12.6×). Above that its flank, a nearly bare step, is
read well by steps 4 to 6, and its locator contrast reads low on frames whose bead is plain
to see (a specular ridge or a lit half dilutes the inner box): taking the path from 20×, as a
bright bead does, sent every hard and some `normal` dark frames down it (`normal` dark width
error p95 0.40 → 0.57 px, seed 7). On the path a dark bead differs from a bright one in three
ways:

- its edge is where the profile is half way down (``_DEPART_DARK``), not 20 %: a blurred
  step is half way down at the step whatever its blur, and a dark bead's flank has little
  shading to pull that level inwards (the path as a bright bead takes it, at 20 %: the
  edges 1.3 px outside the footprint on each side, the width error median 2.7 px, 83 of 86
  OK parts rejected, hard dark seed 7);
- its contrast, which decides presence, stays that of the usual 3 stations (averaged over 12
  mm, a gap shorter than that kept its contrast: hard dark seed 7 gap recall 0.96 → 0.94),
  and the gap ends' caps are measured on edges found at the usual resolution (the averaged
  edges run on into the gap by half the span: the largest gap-end error 2.9 → 7.0 px);
- the locator's boxes wider than nominal score the lower of their inner box's two halves,
  not its mean: where a glare ramp lifts the frit between the bead and the glass edge to
  near the bead's level, a wide box took bead and frit for one bead, its far flank on the
  fixture beyond the glass edge, and the walk, starting on the frit, ran on to the glass
  edge (one side 8–13 px too wide). Both halves of a bead stand out of its flanks; of bead
  and frit, one half is the frit. On the idealised geometry this tells them apart only for
  frit lifted between about 0.5 and 0.6 of the bead's height (higher, the frit's half
  stands out as far); measured, hard dark false rejects 49 → 47 and 50 → 49, false alarms
  4.54 → 4.00 and 4.18 → 3.82 per image (seeds 7, 8), recall unchanged (60 wide defects and
  26 blobs on these frames). Not on other frames: a wide bead with a lit half 20 grey levels
  lower (`normal` dark seed 7) then lost its wide box to a narrow one on its darker half,
  and a wide defect was read as an offset (wide recall 1.00 → 0.99).

Measured on the hard dark sets (seed 7, held-out seed 8; before the path, without the
halves): false rejects 54 → 49 of 86 and 56 → 50 of 81, false alarms 6.36 → 4.54 and 6.61 →
4.18 per image, width
error per station median 0.50 → 0.33 and 0.50 → 0.31 px, p95 1.90 → 1.48 and 1.87 → 1.39,
mean width 0.47 → 0.23 and 0.49 → 0.21 mm; no escapes, recall and gap ends unchanged; the
clean and normal sets unchanged. By false call on the 106 low-contrast dark parts of seed 7
(before → after; of their 48 OK parts 44 → 39 rejected): noise within the limits' reach
(no edge over 3 px off) 256 → 71; one side's walk running on across the frit between the
bead and the glass edge to the glass edge (8–13 px too wide) 452 → 329, at stations where
the locator's widest boxes took bead and frit for one wide bead (95 % of them before: a
glare ramp lifts the frit to within a few grey levels of the bead); gaps 241 → 241 (the
bead stands out on one side only); an edge 3 px or more inside 41 → 92.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ._jit import fma32, ieee_kernel, inlined, kernel

__all__ = ["Edges", "edges_near", "find_edges"]

_SCALES = (0.5, 1.0, 1.5, 2.0)  # bead widths (× nominal) the locator looks for
_SCALES_F64 = np.asarray(_SCALES, np.float64)   # ... as the locator's kernel takes them
_SCALES_F64.flags.writeable = False
_DEPART = 0.2              # the walk's edge: where the profile has come down to this × the bead's height
_DEPART_DARK = 0.5         # ... on a dark bead short of contrast (see find_edges): a blurred
                           # step is half way down at the step, whatever its blur
_BRIDGE = 0.3              # dips up to this × nominal width inside the bead are bridged
_BRIDGED_ZONE = 0.35       # an edge found across a dip bridged more than this × nominal width
                           # out from the centre is suspect (see find_edges)
_REFINE_PX = 1.0           # gradient peak searched this far around the walk's edge (farther in,
                           # a dim, shaded flank keeps steepening towards the crest)
_SMOOTH_ACROSS_PX = 0.35   # σ of the smoothing across the path (3 taps: at 1 px apart, a sample
                           # takes 1.6 % of each neighbour; wider, 0.5 / 0.7 px, the edges' error
                           # p95 grew 0.223 -> 0.274 / 0.315 px on clean bright seed 8, 25 frames)
_LOCATE_EVERY = 2          # the locator searches every 2nd station; the rest re-check its neighbours' centres
_WIDER_MARGIN = 0.5        # relative response a wider-than-nominal scale needs over the best so far
_SIGMA_STRAY = 1.5         # a blur fit this far off the frame's median (or failed) takes the median
_DIP_PX = 4.0              # a background the profile rises from again (by more than the noise
                           # tolerance) within this many px farther out is a dark speck's dip
_NARROW = 0.75             # a locator box narrower than this × nominal width may stand on one
                           # lobe of the bead: its walk goes past a terrace (see _side_edge_at)
_WIDE = 1.25               # boxes wider than this × nominal are the wider-than-nominal scales
_REPAIR_HALF = 10          # a suspect edge is compared with its side's median over ±this many stations
_REPAIR_PX = 1.0           # ... and replaced by it when they differ by more than this
_SPECK_STATIONS = 9        # an edge out of its side's trend for at most this many stations, alone,
                           # is a speck's (up to 5 px across, stations <= 1 px apart, plus the
                           # smoothing along the path over 3 and the blur's reach, ~1 px either
                           # side; see _speck_runs)
_SPECK_PULL = 0.34         # ... while the other side strays at most this × its excursion (or dev)
_FLAT_PX = 2.0             # the walk's flatness test spans this many px ...
_FLAT_STRETCH = 2.0        # ... times at most this on a frame short of contrast (see find_edges)
_SNR_SMOOTH = 20.0         # below this ratio of the frame's typical bead contrast to the noise of one
                           # sample, profiles are averaged over more stations (see find_edges)
_SHADE_SCATTER = 0.01      # px: a shading shift that scatters more than this from one station to the
                           # next is averaged along the path (median over k ∝ scatter² stations) ...
_SHADE_STATIONS = 33       # ... over at most this many stations (see find_edges, step 5),
_SCATTER_SAMPLES = 512     # ... the scatter read off this many pairs of neighbouring stations
_SHADE_SAMPLES = 4         # ... reading every station, or so many fewer that a half window holds this many
_STEP_SIGMAS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)  # px: candidate blurs of the step model (step 6; the
                           # frame's is chosen by the median residual)
_STEP_OUT_PX = 4.0         # the step model is fitted from this far outside the edge ...
_STEP_IN_SIGMAS = 4.0      # ... to this many blurs inside it
_STEP_IN_SIGMAS_LINE = 3.0 # ... this many on a bright bead fitted with the straight ramp
_STEP_SIGMA_STATIONS = 128 # the blur is chosen on the edges of about this many stations ...
_STEP_SIGMA_ROUND = 0.01   # ... to this many px
_STEP_MOVE_PX = 0.5        # the step model moves an edge at most this far
_BLUR_STRAY_PX = 0.15      # a bright bead's flanks choose the blur unless this far from the clean
                           # step's (see find_edges, step 6; not where the cap's curvature is read)
_CURV_STATIONS = 101       # a bright bead's cap curvature (step 6) is its side's median over this
                           # many stations ...
_CURV_SAMPLES = 16         # ... reading every station, or so many fewer that a half window holds this many
_CURV_ROOMY = 0.5          # ... where at least this fraction of the edges leave the model room
_CURV_SNR = 100.0          # ... and the typical contrast is at least this many times the noise of a sample
_STEP_FLAT_SIGMAS = 2.5    # its background (samples farther out than this many σ) must be flat


@dataclass(frozen=True, eq=False)
class Edges:
    """Edges per station, px along the normal (NaN where no run was found).

    left_px, right_px : (N,) float32; found : (N,) bool; contrast : (N,) float32 (peak minus
    background, grey levels, positive = bead stands out with the recipe's polarity);
    sigma_px : (N,) float32, blur of the edges (NaN on a frame short of contrast, whose
    edges are the walk's, no fit run). smooth_stations : int, how many stations the
    profiles were averaged over (more than asked on a frame short of contrast).
    flank_step : (N,) float32 or None, how far the two flanks the contrast was read against
    differ (grey levels, ≥ 0): ``contrast + flank_step`` is the bead against its darker flank
    (once flipped), ``contrast + flank_step / 2`` against their mean.
    usual : the first steps at the usual smoothing, kept where the profiles were averaged
    over more stations (else None), for :func:`edges_near`.
    """

    left_px: np.ndarray
    right_px: np.ndarray
    found: np.ndarray
    contrast: np.ndarray
    sigma_px: np.ndarray
    smooth_stations: int = 1
    flank_step: np.ndarray | None = None
    usual: _Front | None = None


def _smooth(prof: np.ndarray, bright: bool, smooth_stations: int, closed: bool,
            step_px: float = 0.5) -> np.ndarray:
    """Box over ``smooth_stations`` stations × Gaussian (σ ``_SMOOTH_ACROSS_PX``, samples
    ``step_px`` apart) across, sign-flipped for dark beads: one separable filter from uint8 or
    float32 (M, N) to float32 (M, N).

    Both 3-tap borders (reflect along stations on an open path, replicate across) agree; a
    closed path wraps round, so its first and last stations are redone from the other end.
    """
    n = prof.shape[1]
    k = max(int(smooth_stations), 1)
    k_along, k_across = _smooth_taps(k, bool(bright), float(step_px))
    p = cv2.sepFilter2D(prof, cv2.CV_32F, k_along, k_across, borderType=cv2.BORDER_REFLECT)
    h = k // 2
    if closed and h and n > 2 * h:
        ends = np.concatenate([prof[:, -2 * h:], prof[:, :2 * h]], axis=1)
        e = cv2.sepFilter2D(ends, cv2.CV_32F, k_along, k_across, borderType=cv2.BORDER_REFLECT)
        p[:, -h:] = e[:, h:2 * h]
        p[:, :h] = e[:, 2 * h:3 * h]
    return p


@lru_cache(maxsize=16)
def _smooth_taps(k: int, bright: bool, step_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_smooth`'s filter taps along and across, built once per (k, polarity, step):
    building them took ~3 us of a gap end's find_edges call (read-only, shared)."""
    k_across = cv2.getGaussianKernel(3, _SMOOTH_ACROSS_PX / step_px, cv2.CV_32F) * \
        (1.0 if bright else -1.0)
    k_along = np.full((k, 1), 1.0 / k, np.float32)
    k_across.flags.writeable = False
    k_along.flags.writeable = False
    return k_along, k_across


@kernel
def _smooth3_u8(prof, ka, ky0, ky1, closed, dec, every, sums, copy):
    """:func:`_smooth` of uint8 profiles (M, N) over 3 stations, with the same floats as
    ``cv2.sepFilter2D`` on x86 (its AVX2 row filter: 32 columns a step by fused multiply-adds,
    the rest and a closed path's redone ends by its scalar loop, products added in order; the
    column filter ``fma(above + below, ky1, middle × ky0)``); ``ka`` the taps along, ``ky0``
    and ``ky1`` the middle and outer taps across. In the same pass, with ``copy``, every
    ``dec``-th row copied out (the decimated profiles) and, with ``sums``, their
    :func:`_cumsums` (``every`` the locator's stride): the passes and their traffic through
    the cache in one (the tests hold it to ``_smooth`` and ``_cumsums``). Returns
    (p, pc, cs, cse): pc p's data without ``copy``, cs and cse (1, 1) without ``sums``."""
    m, n = prof.shape
    mc = (m - 1) // dec + 1
    k = (n + every - 1) // every
    p = np.empty((m, n), np.float32)
    pc = np.empty((mc, n), np.float32) if copy else p
    cs = np.empty((mc + 1, n) if sums else (1, 1), np.float32)
    cse = np.empty((mc + 1, k) if sums else (1, 1), np.float32)
    acc = np.zeros(n if sums else 1, np.float64)
    if sums:
        cs[0] = 0.0
        cse[0] = 0.0
    hb = np.empty((3, n), np.float32)         # the row filter's last three rows, in turn
    nv = n - n % 32
    wrap = closed and n > 2
    # unsigned indices: no negative-index wrap to select, and the loops vectorise
    ev = np.uint64(every)
    one = np.uint64(1)
    for jj in range(m + 1):
        if jj < m:
            x = prof[jj]
            h = hb[jj % 3]
            for i in range(one, np.uint64(max(min(nv, n - 1), 1))):
                h[i] = fma32(_F32(x[i + one]), ka, fma32(_F32(x[i]), ka, _F32(x[i - one]) * ka))
            for i in range(max(nv, 1), n - 1):
                h[i] = (_F32(x[i - 1]) * ka + _F32(x[i]) * ka) + _F32(x[i + 1]) * ka
            # the two ends: reflected, or wrapped round (a closed path), as _smooth redoes them
            # on four columns, all of them in the scalar loop
            for i in (0, n - 1):
                a = x[max(i - 1, 0)]
                c = x[min(i + 1, n - 1)]
                if wrap:
                    a = x[i - 1] if i > 0 else x[n - 1]
                    c = x[i + 1] if i < n - 1 else x[0]
                if i < nv and not wrap:
                    h[i] = fma32(_F32(c), ka, fma32(_F32(x[i]), ka, _F32(a) * ka))
                else:
                    h[i] = (_F32(a) * ka + _F32(x[i]) * ka) + _F32(c) * ka
                if n == 1:
                    break
        j = jj - 1
        if j < 0:
            continue
        # the column filter of row j, the rows beyond the ends reflected (replicated)
        ha = hb[max(j - 1, 0) % 3]
        hm = hb[j % 3]
        hc = hb[min(j + 1, m - 1) % 3]
        out = p[j]
        for i in range(np.uint64(n)):
            out[i] = fma32(ha[i] + hc[i], ky1, hm[i] * ky0)
        if j % dec == 0:
            r = j // dec
            if copy:
                pc[r] = out
            if sums:
                o = cs[r + 1]
                for i in range(np.uint64(n)):
                    acc[i] += out[i]
                    o[i] = acc[i]
                oe = cse[r + 1]
                for i in range(np.uint64(k)):
                    oe[i] = o[i * ev]
    return p, pc, cs, cse


# ----------------------------------------------------------------------------------------
# Compiled kernels. Profiles are (M, N): a row per sample offset, a column per station. The
# whole-row passes (cumulative sums, the locator's scan over centres) run over contiguous
# rows of N stations and vectorise; the per-station work round each edge (the walk, the
# sub-pixel fit) is a loop over stations. Arithmetic is float32 where
# the profile is, with float32 constants, as float32 numpy code would do it (the tests hold
# the kernels to slow per-station references).

_F32 = np.float32


@kernel
def _cumsums(pc, every):
    """Cumulative sums down the rows of ``pc`` (M, N) with a leading zero row, summed in
    float64 and stored float32: (M + 1, N), and the same for every ``every``-th station
    (M + 1, ceil(N / every)), contiguous for the locator."""
    m, n = pc.shape
    k = (n + every - 1) // every
    cs = np.empty((m + 1, n), np.float32)
    cse = np.empty((m + 1, k), np.float32)
    acc = np.zeros(n, np.float64)
    cs[0] = 0.0
    cse[0] = 0.0
    # unsigned indices for the strided copy: no negative-index wrap to select, so it compiles
    # to a tighter loop (measured alone on the 2448×2048 bench frame: 0.146 → 0.123 ms)
    ev = np.uint64(every)
    for j in range(m):
        row = pc[j]
        out = cs[j + 1]
        for i in range(n):
            acc[i] += row[i]
            out[i] = acc[i]
        oute = cse[j + 1]
        for i in range(np.uint64(k)):
            oute[i] = out[i * ev]
    return cs, cse


@kernel
def _locate_kernel(cs, width_px, step_px, flank, margin, scales, wider, halves=False):
    """The multi-scale difference of boxes (see :func:`_locate`) at every station (column)
    of the cumulative sums ``cs`` (M + 1, N): centre row, response, flank means at the
    winner, and the winner's width (rows)."""
    m = cs.shape[0] - 1
    n = cs.shape[1]
    best = np.full(n, -np.inf, np.float32)
    where = np.full(n, m // 2, np.int64)
    offset = np.zeros(n, np.int64)
    width = np.zeros(n, np.float32)
    r = np.empty(n, np.float32)
    k = np.empty(n, np.int32)
    inv_f = _F32(1.0 / flank)
    for s in range(scales.shape[0]):
        w = scales[s] * width_px / step_px
        h = max(int(np.rint(0.35 * w)), 1)
        o = int(np.rint(0.5 * w)) + margin
        j0 = o + flank
        cnt = m - 2 * (o + flank)
        if cnt <= 0:
            continue
        inv_in = _F32(1.0 / (2 * h + 1))
        r[:] = -np.inf
        k[:] = 0
        if halves and scales[s] > 1.0:
            inv_h = _F32(1.0 / (h + 1))
            for j in range(cnt):
                c = j0 + j
                in1, inc, in0 = cs[c + h + 1], cs[c], cs[c - h]
                inc1 = cs[c + 1]
                l1, l0 = cs[c - o], cs[c - o - flank]
                r1, r0 = cs[c + o + 1 + flank], cs[c + o + 1]
                for i in range(n):
                    v = min((inc1[i] - in0[i]) * inv_h, (in1[i] - inc[i]) * inv_h) - \
                        max((l1[i] - l0[i]) * inv_f, (r1[i] - r0[i]) * inv_f)
                    better = v > r[i]
                    r[i] = v if better else r[i]
                    k[i] = j if better else k[i]
        else:
            # two centres a pass, compared in turn: the running best is read and written once
            # for both (the loop is bound by its loads and stores; measured alone on the
            # 2448×2048 bench frame: 0.125 → 0.114 ms)
            for j in range(0, cnt - 1, 2):
                c = j0 + j
                in1, in0 = cs[c + h + 1], cs[c - h]
                l1, l0 = cs[c - o], cs[c - o - flank]
                r1, r0 = cs[c + o + 1 + flank], cs[c + o + 1]
                in1b, in0b = cs[c + h + 2], cs[c + 1 - h]
                l1b, l0b = cs[c + 1 - o], cs[c + 1 - o - flank]
                r1b, r0b = cs[c + o + 2 + flank], cs[c + o + 2]
                jb = j + 1
                for i in range(n):
                    v = (in1[i] - in0[i]) * inv_in - max((l1[i] - l0[i]) * inv_f, (r1[i] - r0[i]) * inv_f)
                    vb = (in1b[i] - in0b[i]) * inv_in - max((l1b[i] - l0b[i]) * inv_f,
                                                            (r1b[i] - r0b[i]) * inv_f)
                    ri = r[i]
                    ki = k[i]
                    better = v > ri
                    ri = v if better else ri
                    ki = j if better else ki
                    better = vb > ri
                    r[i] = vb if better else ri
                    k[i] = jb if better else ki
            if cnt % 2:
                j = cnt - 1
                c = j0 + j
                in1, in0 = cs[c + h + 1], cs[c - h]
                l1, l0 = cs[c - o], cs[c - o - flank]
                r1, r0 = cs[c + o + 1 + flank], cs[c + o + 1]
                for i in range(n):
                    v = (in1[i] - in0[i]) * inv_in - max((l1[i] - l0[i]) * inv_f, (r1[i] - r0[i]) * inv_f)
                    better = v > r[i]
                    r[i] = v if better else r[i]
                    k[i] = j if better else k[i]
        # far flanks of a large box often land on brighter structures (glass edge, glare,
        # halftone) and inflate the response; a scale wider than nominal must win clearly
        wider_scale = scales[s] > 1.0
        for i in range(n):
            need = best[i] + _F32(wider) * abs(best[i]) if wider_scale else best[i]
            if r[i] > need:
                best[i] = r[i]
                where[i] = j0 + k[i]
                offset[i] = o
                width[i] = w
    bg_l = np.zeros(n, np.float32)
    bg_r = np.zeros(n, np.float32)
    for i in range(n):
        if cs[m, i] != cs[m, i]:
            # a NaN sample makes every response NaN: no scale wins
            best[i] = -np.inf
            where[i] = m // 2
            width[i] = 0.0
        elif best[i] != -np.inf:
            c, o = where[i], offset[i]
            bg_l[i] = (cs[c - o, i] - cs[c - o - flank, i]) * inv_f
            bg_r[i] = (cs[c + o + 1 + flank, i] - cs[c + o + 1, i]) * inv_f
    return where, best, bg_l, bg_r, width


@kernel
def _box_rows(m1, c_s, w_s, flank, margin):
    """The rows of the cumulative sums (``m1`` of them) that the locator's response reads for
    each centre and width of ``c_s``, ``w_s`` (the boxes clipped into the profile): (K, 7)
    int64, the left flank's first and last, the right flank's, the inner box's, and the
    inner box's size. The tests hold it to the plain definition (``_response_at`` there)."""
    k = c_s.shape[0]
    out = np.empty((k, 7), np.int64)
    for a in range(k):
        w = w_s[a]
        h = max(int(np.rint(_F32(0.35) * w)), 1)
        o = int(np.rint(_F32(0.5) * w)) + margin
        c = min(max(c_s[a], o + flank), m1 - 2 - o - flank)
        q = 0
        for off, size in ((-o - flank, flank), (o + 1, flank), (-h, 2 * h + 1)):
            j0, j1 = c + off, c + off + size
            j0 = j0 + m1 if j0 < 0 else j0             # profiles shorter than the box: wrap round
            j1 = j1 + m1 if j1 < 0 else j1
            # a row still negative is read from the end once more (as indexing does); a box
            # wider than even that can hold reads the nearest row, never past the sums (the
            # locator never makes one, and compiled code has no bounds check)
            out[a, q] = min(max(j0 + m1 if j0 < 0 else j0, 0), m1 - 1)
            out[a, q + 1] = min(max(j1 + m1 if j1 < 0 else j1, 0), m1 - 1)
            q += 2
        out[a, 6] = 2 * h + 1
    return out


@inlined
def _inner(cs, q, i, halves):
    """The inner part's level of station ``i``'s box ``q`` (a row of :func:`_box_rows`): the
    inner box's mean, or with ``halves`` the lower of its two halves' means."""
    if not halves:
        return (cs[q[5], i] - cs[q[4], i]) / _F32(q[6])
    c = q[4] + (q[6] - 1) // 2
    size = _F32((q[6] + 1) // 2)
    return min((cs[c + 1, i] - cs[q[4], i]) / size, (cs[q[5], i] - cs[c, i]) / size)


@kernel
def _pick_kernel(cs, c_s, w_s, every, flank, margin, wide, wider, halves=False):
    """Each station takes the better of its two nearest located stations' centre and width
    (the second only where strictly better), evaluated on its own profile (:func:`_box_rows`).
    As in the locator, a box wider than ``wide`` rows is better than a narrower one only by the
    margin ``wider`` (relative): taken plainly, a neighbour's wider box spread along the
    path over stations where it had not won (bead and glass terrace read as one wide bead)."""
    n = cs.shape[1]
    k = c_s.shape[0]
    center = np.empty(n, np.int64)
    contrast = np.empty(n, np.float32)
    bg_l = np.empty(n, np.float32)
    bg_r = np.empty(n, np.float32)
    width = np.empty(n, np.float32)
    # the boxes' rows once per located station, not per station that reads them (the same
    # sums and divisions; measured on the 2448×2048 bench frame: 0.14 → 0.08 ms)
    rows = _box_rows(cs.shape[0], c_s, w_s, flank, margin)
    fl = _F32(flank)
    for i in range(n):
        a = i // every
        b = a + 1
        if b >= k:
            b = 0 if n % every == 0 else a       # the last stations: wrap or repeat
        q = rows[a]
        la = (cs[q[1], i] - cs[q[0], i]) / fl
        rra = (cs[q[3], i] - cs[q[2], i]) / fl
        ra = _inner(cs, q, i, halves and w_s[a] > wide) - max(la, rra)
        # the two neighbours mostly found the same box: the same response, and the first
        # stays (measured on the 2448×2048 bench frame: 0.23 → 0.15 ms)
        if c_s[b] != c_s[a] or w_s[b] != w_s[a]:
            q = rows[b]
            lb = (cs[q[1], i] - cs[q[0], i]) / fl
            rrb = (cs[q[3], i] - cs[q[2], i]) / fl
            rb = _inner(cs, q, i, halves and w_s[b] > wide) - max(lb, rrb)
            # as in the locator, a box wider than nominal must win clearly over one that is
            # not
            wa, wb = w_s[a] > wide, w_s[b] > wide
            if wa == wb:
                better = rb > ra
            elif wb:
                better = rb > ra + _F32(wider) * abs(ra)
            else:
                better = not ra > rb + _F32(wider) * abs(rb)
            if better:
                ra, la, rra, a = rb, lb, rrb, b
        center[i] = c_s[a]
        width[i] = w_s[a]
        contrast[i] = ra
        bg_l[i] = la
        bg_r[i] = rra
    return center, contrast, bg_l, bg_r, width


@kernel
def _flat_level(v, k, f):
    """The level of a flat stretch ``v[k .. k + f]`` the walk takes for a background: the
    mean of its two ends and its middle."""
    return (v[k] + v[k + f // 2] + v[k + f]) * _F32(1.0 / 3.0)


@kernel
def _blob_rim(pc, cdec, i, centers, q, d, kf, k, f, ahead, bg, upper, lower, tol, sgn0,
              spread, closed):
    """Whether the fall from the flat stretch at ``kf`` (level ``bg``; ``upper`` at its middle)
    to the one at ``k`` (``lower``) on station ``i``'s walk (from row ``q``, direction ``d``) is
    a blob's rim: the lower stretch is no dip, the profile climbing out of it within ``ahead``
    samples back to the upper level and flat there (the substrate resumes beyond a dark
    speck; a brighter structure beyond, the fixture, rises on past it), and the terrace is
    there too along the path (:func:`_along_terrace`)."""
    m = (pc.shape[0] - 1) // cdec + 1
    for j in range(k + f + 1, k + f + ahead + 1):
        a = pc[min(max(q + d * j, 0), m - 1) * cdec, i]
        if (bg - a) * sgn0 <= tol:
            b = pc[min(max(q + d * (j + f), 0), m - 1) * cdec, i]
            if abs(b - a) <= tol:
                return False
            break
    return _along_terrace(pc, cdec, i, centers, q + d * (kf + f // 2), q + d * (k + f // 2),
                          upper, lower, k - kf + f + spread, closed)


@kernel
def _along_terrace(pc, cdec, i, centers, row_u, row_l, upper, lower, far, closed):
    """Whether the terrace beside station ``i``'s flank (the profile at ``upper`` at row
    ``row_u``, then down at ``lower`` at ``row_l`` farther out) is there too ``far`` stations
    along the path, on either side: at the same places relative to the bead's centre, the
    profile above half way from ``lower`` to ``upper`` at the first and below it at the second.
    A speck is a disc: it reaches no farther along the path than its extent across (the
    terrace's width) plus the blur and the smoothing along the path, and there the profile
    is what lies under it (a bright speck's top at the substrate's level, a dark speck's dip
    at the level beside it); bead material (a blob's dome) runs on along the path towards its
    middle. The centre at ``i`` is read off those two stations (a speck beside the flank
    pulls the locator's centre at ``i`` towards itself)."""
    m = (pc.shape[0] - 1) // cdec + 1
    n = pc.shape[1]
    ja = i - far
    jb = i + far
    if closed:
        ja %= n
        jb %= n
    has_a = 0 <= ja < n
    has_b = 0 <= jb < n
    if has_a and has_b:
        c_ref = 0.5 * (centers[ja] + centers[jb])
    elif has_a:
        c_ref = float(centers[ja])
    elif has_b:
        c_ref = float(centers[jb])
    else:
        return False
    half = _F32(0.5) * (upper - lower)
    for side in range(2):
        j = ja if side == 0 else jb
        if not (has_a if side == 0 else has_b):
            continue
        qu = min(max(int(np.rint(row_u - c_ref + centers[j])), 0), m - 1)
        ql = min(max(int(np.rint(row_l - c_ref + centers[j])), 0), m - 1)
        if (pc[qu * cdec, j] - lower) * half > half * half and \
                (pc[ql * cdec, j] - lower) * half < half * half:
            return True
    return False


@inlined
def _side_edge_at(pc, cdec, i, center, w, bg_flank, d, f, kmax, tol, ahead, v, narrow, wide,
                  substrate, centers, spread, closed, depart):
    """One side's edge at station ``i`` (see :func:`_side_edge`) on the decimated profiles,
    every ``cdec``-th row of ``pc``; ``v`` is a scratch array of ``kmax``. Returns (row, ok, suspect): suspect when the background the walk took is a
    narrow dip (the profile rises again by more than ``tol`` within ``ahead`` samples
    farther out), when the profile sinks below it by more than ``tol`` between the edge and
    the background (a dark speck on or beside the flank either way), when there is no
    flat background at all, or when the walk passed a flat shoulder more than ``tol`` below
    its highest point but not yet half way down (a dark speck touching the flank).
    ``narrow``: the locator's box is narrower than ``_NARROW`` × nominal; a background the
    profile then falls from again (by more than ``tol``) within ``ahead`` samples beyond it
    is a terrace inside the bead, not the background. ``wide``: a dark bead's box is wider
    than ``_WIDE`` × nominal; a shoulder that stays flat (within ``tol`` of its first sample)
    for ``f + ahead`` samples is a terrace beside the bead and is the background, not a
    suspect shoulder (see :func:`find_edges`). ``substrate``: the other side's background
    (NaN: none), a level the profile may pass on its way down to the background the walk
    took, farther from the bead: the substrate is then the background, and the edge suspect
    (see :func:`_walk_fit_kernel`). ``spread`` >= 0 (a bright bead's walk, ``spread`` the
    half width of the smoothing along the path, stations): a background the profile falls
    from again is a blob's dome where the neighbours along the path show it too (see
    :func:`_along_terrace`); ``centers`` the locator's centres of all stations, ``closed`` the
    path wraps round. Returns (row, ok, suspect, the walk's crossing level, background)."""
    m = (pc.shape[0] - 1) // cdec + 1
    q = min(max(center + d * int(np.rint(_F32(0.25) * w)), 0), m - 1)
    # unsigned indices: no negative-index wrap to select (measured alone on the 2448×2048
    # bench frame: the walk and fit kernel 1.11 → 1.04 ms)
    ui = np.uint64(i)
    for k in range(kmax):
        v[k] = pc[np.uint64(min(max(q + d * k, 0), m - 1) * cdec), ui]
    sgn0 = _F32(1.0) if v[0] >= bg_flank else _F32(-1.0)
    # the local background: the first flat sample that has come down half way from the
    # highest point of the walk so far
    top = _F32(-np.inf)
    bg = bg_flank
    kf = -1
    paused = False
    for k in range(kmax - f):
        r = (v[k] - bg_flank) * sgn0
        if r > top or r != r:
            top = r
        if abs(v[k] - v[np.uint64(k + f)]) <= tol:
            if r <= top * _F32(0.5):
                bg = _flat_level(v, k, f)
                kf = k
                break
            # flat, but not yet half way down: a shoulder on the way out (the top of a dark
            # speck touching the flank, which the walk then crosses to the background beyond)
            if r < top - tol:
                long_flat = wide and k + f + ahead < kmax
                if long_flat:
                    for j in range(k + 1, k + f + ahead + 1):
                        if abs(v[j] - v[k]) > tol:
                            long_flat = False
                            break
                if long_flat:
                    bg = _flat_level(v, k, f)
                    kf = k
                    break
                paused = True
    suspect = kf < 0 or paused
    if kf >= 0:
        rise = v[np.uint64(min(kf + f, kmax - 1))]
        for k in range(kf + f + 1, kf + f + ahead + 1):
            rise = max(rise, v[np.uint64(min(k, kmax - 1))])
        suspect = suspect or (rise - bg) * sgn0 > tol
        if (narrow or spread >= 0) and not suspect:
            # a box narrower than nominal may stand on one lobe of a bead whose other half
            # is lower (lit, or under a glare ramp): the background it took is then a terrace
            # inside the bead, and the profile falls again within ``ahead`` samples beyond
            # it. The background is the next flat stretch below that fall. On a bright bead
            # (``spread`` >= 0; see find_edges) the same fall may be the rim of a blob whose
            # gentle dome, joined to the crest, passed for flat: the lower stretch is the
            # background where the terrace and the fall are there too at the neighbours
            # along the path (bead material, not a speck), and the lower stretch is no dip
            # the profile climbs out of back to the terrace's level, flat there (the
            # substrate beyond a dark speck)
            # the first sample that sinks, by a fixed count of selects: a loop that leaves at
            # it mispredicts (measured on the 2448×2048 bench frame: the walk 0.81 → 0.74 ms)
            ksink = -1
            k_end = min(kf + f + ahead + 1, kmax)
            for t in range(ahead):
                k = kf + f + 1 + t
                sink = (bg - v[np.uint64(min(k, kmax - 1))]) * sgn0 > tol
                ksink = k if (ksink < 0) & (k < k_end) & sink else ksink
            if ksink >= 0:
                for k in range(ksink, kmax - f):
                    if abs(v[k] - v[k + f]) <= tol:
                        take = narrow or _blob_rim(pc, cdec, i, centers, q, d, kf, k, f, ahead,
                                                   bg, v[kf + f // 2], _flat_level(v, k, f),
                                                   tol, sgn0, spread, closed)
                        if take:
                            bg = _flat_level(v, k, f)
                            kf = k
                        break
    kend = min(kf + f, kmax - 1)
    borrowed = False
    if kf >= 0 and substrate == substrate and not narrow and v[0] - substrate > tol:
        # the fall passes the substrate's level on its way to the background: the substrate
        # is the background, what lies farther down beyond it is another structure's step
        for k in range(kend):
            if v[k + 1] <= substrate:
                bg = substrate
                kf = k + 1
                kend = k
                borrowed = True
                break
    body = v[0] - bg
    sgn = _F32(1.0) if body >= 0 else _F32(-1.0)
    delta = depart * abs(body)
    ks = 0
    for k in range(kmax):
        if (v[k] - bg) * sgn <= delta:
            ks = k
            break
    ok = ks > 0
    ks = max(ks, 1)
    if kf >= 0 and not suspect:
        for k in range(ks, kend + 1):
            if (v[np.uint64(k)] - bg) * sgn < -tol:
                suspect = True
                break
    suspect = suspect or borrowed
    v_in = (v[np.uint64(ks - 1)] - bg) * sgn
    frac = (v_in - delta) / max(v_in - (v[np.uint64(ks)] - bg) * sgn, _F32(1e-6))
    frac = min(max(frac, _F32(0.0)), _F32(1.0))
    return q + d * (float(ks - 1) + float(frac)), ok, suspect, bg + sgn * delta, bg


@kernel
def _side_kernel(pc, center, width, bg, d, f, kmax, tol, ahead):
    n = pc.shape[1]
    xc = np.empty(n, np.float64)
    ok = np.empty(n, np.bool_)
    suspect = np.empty(n, np.bool_)
    v = np.empty(kmax, np.float32)
    for i in range(n):
        xc[i], ok[i], suspect[i], _, _ = _side_edge_at(pc, 1, i, center[i], width[i], bg[i], d,
                                                       f, kmax, tol[i], ahead, v, False, False,
                                                       _F32(np.nan), center, -1, False,
                                                       _F32(_DEPART))
    return xc, ok, suspect


@kernel
def _walk_tol(tol_px, contrast):
    """The walk's flatness tolerance at a station: a flat background changes by at most 3 σ
    of the difference of two noisy samples (``tol_px``) plus a tenth of the bead's contrast
    over the flatness test's span."""
    return _F32(tol_px + float(_F32(0.1) * abs(contrast)))


@kernel
def _bridged_kernel(closed, opened, center, width, rows, dec, tol_px, contrast, zone):
    """Whether the closing raised the profile by more than the walk's tolerance anywhere
    between the walk's start (a quarter width out from ``center``) and the edge (``rows``,
    (2, N), rows of the full profile, ``dec`` of them per row of ``closed``/``opened``),
    more than ``zone`` rows out from ``center``: (2, N) bool, side 0 the left."""
    m, n = closed.shape
    out = np.zeros((2, n), np.bool_)
    z = int(np.floor(zone)) + 1              # the first row counted, from the centre
    for i in range(n):
        tol = _walk_tol(tol_px, contrast[i])
        c = center[i]
        ui = np.uint64(i)
        for s in range(2):
            d = 2 * s - 1
            r = rows[s, i]
            if np.isnan(r):
                continue
            q = min(max(c + d * int(np.rint(_F32(0.25) * width[i])), 0), m - 1)
            e = min(max(int(np.rint(r / dec)), 0), m - 1)
            if (e - q) * d < 0:
                continue
            j = max(q, c + z) if d > 0 else min(q, c - z)
            # (unsigned indices: no negative-index wrap to select; rows between j and e, both
            # in the profile, are read)
            while (e - j) * d >= 0:
                uj = np.uint64(j)
                if closed[uj, ui] - opened[uj, ui] > tol:
                    out[s, i] = True
                    break
                j += d
    return out


@inlined
def _interp(p, i, pos):
    """Station ``i``'s profile at fractional row ``pos`` (clamped), linearly interpolated."""
    pos = min(max(pos, 0.0), p.shape[0] - 1.000001)
    j = int(pos)
    f = _F32(pos - j)
    a = p[j, i]
    return a + (p[j + 1, i] - a) * f


@inlined
def _peak_at(p, i, idx, sign, step_px, reach, g, h):
    """The gradient's peak near row ``idx`` of station ``i`` (:func:`_fit_at`): its row and the
    three gradients round it (at least 1e-3, NaN kept) that the Gaussian fit reads."""
    m = p.shape[0]
    scale = _F32(1.0 / (h * step_px)) * _F32(sign)
    # differences over h rows, p[c + hi] - p[c - lo], at rows idx-reach-1 .. idx+reach+1 (zero
    # where they leave the profile): central at an even h, where they lie at c; at an odd h
    # they lie half a row farther out, at c + 0.5
    lo = h // 2
    hi = h - lo
    inside = idx - reach - 1 >= lo and idx + reach + 1 <= m - 1 - hi
    for j in range(2 * reach + 3):
        c = idx - reach - 1 + j
        if inside or lo <= c <= m - 1 - hi:
            g[j] = (p[c + hi, i] - p[c - lo, i]) * scale
        else:
            g[j] = 0.0
    pk = idx
    if reach:
        # the first maximum (or first NaN, as np.argmax) among the rows whose difference fits
        best = _F32(-np.inf)
        kb = 0
        for j in range(2 * reach + 1):
            c = idx - reach + j
            x = g[j + 1] if (inside or lo <= c <= m - 1 - hi) else _F32(-np.inf)
            if x > best:
                best = x
                kb = j
            elif x != x:
                kb = j
                break
        pk = idx + kb - reach
    at = pk - idx + reach + 1
    lim = _F32(1e-3)
    ga = g[at - 1] if (g[at - 1] > lim or g[at - 1] != g[at - 1]) else lim
    gb = g[at] if (g[at] > lim or g[at] != g[at]) else lim
    gc = g[at + 1] if (g[at + 1] > lim or g[at + 1] != g[at + 1]) else lim
    return pk, ga, gb, gc


@inlined
def _fit_at(p, i, idx, sign, step_px, reach, g, h=2):
    """The sub-pixel gradient peak near row ``idx`` of station ``i`` (see :func:`find_edges`,
    step 4); ``sign`` +1 rising (left edge), -1 falling (right); ``g`` a scratch array of
    ``2 reach + 3``; ``h`` the rows the gradient's differences span (:func:`_diff_rows`: about
    1 px). Returns (row, blur σ px, whether the Gaussian fit held)."""
    lo = h // 2
    hi = h - lo
    pk, ga, gb, gc = _peak_at(p, i, idx, sign, step_px, reach, g, h)
    # three-point Gaussian fit on the gradient's logarithm: with a, b, c the logarithms
    # of the three gradients, the peak lies (a - c) / 2 (a - 2 b + c) samples from the
    # middle one and σ² = -1 / (a - 2 b + c) samples²; two logarithms of ratios are enough
    curv = np.log((ga * gc) / (gb * gb))
    fit = curv < _F32(-1e-6)
    if fit:
        delta = _F32(0.5) * np.log(ga / gc) / curv
        sigma = _F32(step_px) / np.sqrt(-curv)
    else:
        delta = _F32(0.0)
        sigma = _F32(1.5 * step_px)
    delta = min(max(delta, _F32(-0.5)), _F32(0.5))
    sigma = min(max(sigma, _F32(0.5 * step_px)), _F32(4.0))
    return pk + float(delta) + 0.5 * (hi - lo), sigma, fit


_FIT_BLOCK = 512            # stations per block of _fit_edges (its scratch rows stay in L1)


@ieee_kernel
def _fit_edges(p, rows, dec, step_px, reach, h):
    """:func:`_fit_at` at every edge of ``rows`` (2, N; the walk's rows, ``dec`` rows of ``p``
    each), the same floats: (rows, σ, fit held), (2, N). Per side, a block of stations at a
    time in passes: the gradients round each edge (loads from the profiles, unsigned
    indices: no negative-index wrap to select), the peak among them by selects across the
    block (no branch to mispredict), the three gradients at it, then the fits, which
    vectorise but for their logarithms: both logarithms and quotients at every edge, then a
    select (NumPy's error model, see :func:`._jit.ieee_kernel`: a failed fit's division by a
    zero curvature is discarded). Measured alone on the 2448×2048 bench frame: 0.62 → 0.51 ms
    for the fits' own pass, then 0.42 → 0.26 ms for these passes (per edge, the peak's search
    and its signed loads were 0.42 ms)."""
    m, n = p.shape
    lo = h // 2
    hi = h - lo
    nj = 2 * reach + 3
    top = m - 1 - hi                        # the last row whose difference fits
    half = 0.5 * (hi - lo)
    lim = _F32(1e-3)
    out = np.empty((2, n), np.float64)
    sigma = np.empty((2, n), np.float32)
    fit = np.empty((2, n), np.bool_)
    nb_max = max(min(_FIT_BLOCK, n), 1)
    idx = np.empty(nb_max, np.int64)
    g = np.empty((nj, nb_max), np.float32)
    best = np.empty(nb_max, np.float32)
    kb = np.empty(nb_max, np.int64)
    done = np.empty(nb_max, np.bool_)
    g0 = np.empty(nb_max, np.float32)
    g1 = np.empty(nb_max, np.float32)
    g2 = np.empty(nb_max, np.float32)
    uh = np.uint64(h)
    unj = np.uint64(nj)
    one = np.uint64(1)
    for s in range(2):
        # as _peak_at: differences over h rows, p[c + hi] - p[c - lo], at rows
        # idx-reach-1 .. idx+reach+1 (zero where they leave the profile)
        scale = _F32(1.0 / (h * step_px)) * _F32(1 - 2 * s)
        for b0 in range(0, n, nb_max):
            unb = np.uint64(min(nb_max, n - b0))
            ub0 = np.uint64(b0)
            for t in range(unb):
                # the difference nearest the walk's edge: at an odd h it lies half a row out
                idx[t] = min(max(int(np.rint(rows[s, ub0 + t] * dec - 0.5 * (h % 2))), lo), top)
            for t in range(unb):
                ui = ub0 + t
                c0 = idx[t] - reach - 1
                if c0 >= lo and c0 + nj - 1 <= top:
                    ua = np.uint64(c0 - lo)
                    for j in range(unj):
                        g[j, t] = (p[ua + j + uh, ui] - p[ua + j, ui]) * scale
                else:
                    # near the profile's ends (rare): the rows off it read nothing
                    for j in range(nj):
                        c = c0 + j
                        if lo <= c <= top:
                            g[j, t] = (p[c + hi, ui] - p[c - lo, ui]) * scale
                        else:
                            g[j, t] = 0.0
            # the first maximum (or the first NaN, as np.argmax) among the rows whose
            # difference fits
            for t in range(unb):
                best[t] = -np.inf
                kb[t] = 0
                done[t] = False
            if reach:
                for j in range(2 * reach + 1):
                    for t in range(unb):
                        c = idx[t] - reach + j
                        x = g[j + 1, t] if (c >= lo) & (c <= top) else _F32(-np.inf)
                        nan = np.isnan(x)
                        was = done[t]
                        up = (x > best[t]) & ~was
                        best[t] = x if up else best[t]
                        kb[t] = j if up | (nan & ~was) else kb[t]
                        done[t] = was | nan
            for t in range(unb):
                k = np.uint64(kb[t])
                ga = g[k, t]
                gb = g[k + one, t]
                gc = g[k + one + one, t]
                g0[t] = ga if (ga > lim or np.isnan(ga)) else lim
                g1[t] = gb if (gb > lim or np.isnan(gb)) else lim
                g2[t] = gc if (gc > lim or np.isnan(gc)) else lim
            for t in range(unb):
                ga = g0[t]
                gb = g1[t]
                gc = g2[t]
                curv = np.log((ga * gc) / (gb * gb))
                ok = curv < _F32(-1e-6)
                delta = _F32(0.5) * np.log(ga / gc) / curv
                sg = _F32(step_px) / np.sqrt(-curv)
                delta = delta if ok else _F32(0.0)
                sg = sg if ok else _F32(1.5 * step_px)
                delta = min(max(delta, _F32(-0.5)), _F32(0.5))
                sg = min(max(sg, _F32(0.5 * step_px)), _F32(4.0))
                out[s, ub0 + t] = (idx[t] + kb[t] - reach) + float(delta) + half
                sigma[s, ub0 + t] = sg
                fit[s, ub0 + t] = ok
    return out, sigma, fit


@inlined
def _shade_at(p, i, row, sigma, sign, step_px):
    """The gradient peak at ``row`` of station ``i`` moved out by the shading bias
    ``b σ² / H`` (see :func:`find_edges`, step 5): inner slope b and step H measured on the
    profile, in units of the blur ``sigma`` (px)."""
    s_col = sigma / _F32(step_px)
    inner1 = _interp(p, i, row + float(_F32(sign * 2.0) * s_col))
    inner2 = _interp(p, i, row + float(_F32(sign * 3.5) * s_col))
    outer = _interp(p, i, row - float(_F32(sign * 3.0) * s_col))
    slope = (inner2 - inner1) / (_F32(1.5) * sigma)          # grey levels per px, inwards
    step_h = inner1 - slope * _F32(2.0) * sigma - outer
    shift = slope * (sigma * sigma) / step_h if step_h > _F32(1e-3) else _F32(0.0)
    shift = min(max(shift, _F32(-0.5) * sigma), _F32(1.5) * sigma)
    return row - float(_F32(sign) * shift / _F32(step_px))


@inlined
def _cross_at(p, i, row, level, half):
    """Where station ``i``'s full profile crosses ``level`` near ``row`` (the walk's crossing on
    the decimated profile, linearly interpolated between two noisy samples 1 px apart): a
    least-squares line through the samples within ``half`` rows either side, solved for the
    level; ``row`` itself where the line is flat or the answer lies farther than ``half``."""
    m = p.shape[0]
    r0 = int(np.rint(row))
    if r0 - half < 0 or r0 + half > m - 1:
        return row
    sy = _F32(0.0)
    sxy = _F32(0.0)
    sxx = _F32(0.0)
    ui = np.uint64(i)
    for j in range(-half, half + 1):
        y = p[np.uint64(r0 + j), ui]        # unsigned: no negative-index wrap to select
        sy += y
        sxy += _F32(j) * y
        sxx += _F32(j * j)
    b = sxy / sxx
    a = sy / _F32(2 * half + 1)
    if abs(b) < _F32(1e-3):
        return row
    t = (level - a) / b
    if t != t or abs(t) > half:
        return row
    return r0 + float(t)


@kernel
def _walk_fit_kernel(p, pc, cdec, center, width, contrast, bg_l, bg_r, tol_px, f, kmax, ahead,
                     dec, step_px, reach, h, cross, nominal, dark, spread, closed, depart,
                     fits):
    """Both edges at every station, side 0 the left, 1 the right: the walk on the decimated
    profiles (every ``cdec``-th row of ``pc``: ``p`` itself where no copy was made) and the
    Gaussian fit on the full ones ``p``. Returns (2, N) arrays: row
    of the gradient peak, σ (px), fit held, edge found, edge suspect, and the walk's own row
    (on ``p``'s rows; located on the full profile by :func:`_cross_at` when ``cross``).
    Without ``fits`` no fit is run: the rows are the walk's own (on the 1 px grid, every
    ``dec``-th row of ``p``), σ NaN and no fit held."""
    n = p.shape[1]
    rows = np.empty((2, n), np.float64)
    walk = np.empty((2, n), np.float64)
    ok = np.empty((2, n), np.bool_)
    suspect = np.empty((2, n), np.bool_)
    v = np.empty(kmax, np.float32)
    xs = np.empty(2, np.float64)
    levels = np.empty(2, np.float32)
    bgs = np.empty(2, np.float32)
    crossing = np.empty((2, n) if cross else (2, 1), np.float32)   # the walk's crossing levels
    nan = _F32(np.nan)
    for i in range(n):
        tol = _walk_tol(tol_px, contrast[i])
        # a wider box's walk on a dark bead starts a quarter of the nominal width out
        # (see _side_edge_at)
        wide = dark and width[i] > _F32(_WIDE) * nominal
        w_walk = nominal if wide else width[i]
        narrow = width[i] < _F32(_NARROW) * nominal
        for s in range(2):
            xs[s], ok[s, i], suspect[s, i], levels[s], bgs[s] = _side_edge_at(
                pc, cdec, i, center[i], w_walk, bg_l[i] if s == 0 else bg_r[i], 2 * s - 1, f, kmax,
                tol, ahead, v, narrow, wide, nan, center, -1 if dark or cross else spread, closed,
                depart)
        if dark:
            # a dark bead laid near a step of its substrate (the frit's edge next to the
            # glass edge): one side's walk may run down a narrow terrace of the substrate and
            # on over the step to the level beyond. The bead lies on one substrate, whose
            # level the other side's background shows: that side's walk is redone with it
            for s in range(2):
                o = 1 - s
                if ok[o, i] and not suspect[o, i] and bgs[o] - bgs[s] > tol:
                    xs[s], ok[s, i], suspect[s, i], levels[s], bgs[s] = _side_edge_at(
                        pc, cdec, i, center[i], w_walk, bg_l[i] if s == 0 else bg_r[i], 2 * s - 1,
                        f, kmax, tol, ahead, v, narrow, wide, bgs[o], center, -1, closed,
                        depart)
        for s in range(2):
            x = xs[s]
            walk[s, i] = x * dec
            rows[s, i] = x
            if cross:
                crossing[s, i] = levels[s]
    if cross:
        # the walk's crossing on the full profile, ±2 px (used on frames short of contrast),
        # in a loop of its own, where the sums of neighbouring edges overlap (measured alone
        # on the noisy path of six 2448×2048 hard dark frames: the kernel 1.07-1.17 → 1.00-1.11
        # ms)
        for s in range(2):
            for i in range(n):
                walk[s, i] = _cross_at(p, i, walk[s, i], crossing[s, i], 2 * dec)
    # the fits in a loop of their own, where the chains of logarithms, divisions and square
    # roots of neighbouring edges overlap (measured on the 2448×2048 bench frame: the kernel
    # 1.74 → 1.65 ms), and vectorise (_fit_edges)
    if not fits:
        return rows, np.full((2, n), nan), np.zeros((2, n), np.bool_), ok, suspect, walk
    rows, sigma, fit = _fit_edges(p, rows, dec, step_px, reach, h)
    return rows, sigma, fit, ok, suspect, walk


@ieee_kernel
def _shade_kernel(p, rows, sigma, step_px):
    """:func:`_shade_at` for both sides of every station, (2, N) → (2, N), the same floats.

    In three passes per side: the three places read (their rows and fractions), then the
    reads (gathers from the profiles), then the shading arithmetic. The first and the last
    vectorise across stations (four divisions an edge; NumPy's error model, see
    :func:`._jit.ieee_kernel`: no divisor is zero but a step's, whose quotient is discarded);
    the per-edge loop did not (in the pipeline on the 2448×2048 bench frame: 0.23 → 0.13 ms)."""
    m, n = p.shape
    out = np.empty((2, n), np.float64)
    top = m - 1.000001
    step = _F32(step_px)
    at = np.empty((3, n), np.int64)
    frac = np.empty((3, n), np.float32)
    val = np.empty((3, n), np.float32)
    for s in range(2):
        sgn = _F32(1.0 - 2.0 * s)
        k_in1 = _F32(2.0) * sgn
        k_in2 = _F32(3.5) * sgn
        k_out = _F32(3.0) * sgn
        # the places: inner1, inner2 and outer, as _interp clamps and splits them
        for i in range(n):
            row = rows[s, i]
            s_col = sigma[s, i] / step
            pos = min(max(row + float(k_in1 * s_col), 0.0), top)
            j = int(pos)
            at[0, i] = j
            frac[0, i] = _F32(pos - j)
            pos = min(max(row + float(k_in2 * s_col), 0.0), top)
            j = int(pos)
            at[1, i] = j
            frac[1, i] = _F32(pos - j)
            pos = min(max(row - float(k_out * s_col), 0.0), top)
            j = int(pos)
            at[2, i] = j
            frac[2, i] = _F32(pos - j)
        # (unsigned indices: no negative-index wrap to select; the places are clamped into
        # the profile. Measured alone on the 2448×2048 bench frame: 0.079 → 0.057 ms)
        for q in range(3):
            for i in range(np.uint64(n)):
                j = np.uint64(at[q, i])
                a = p[j, i]
                val[q, i] = a + (p[j + np.uint64(1), i] - a) * frac[q, i]
        for i in range(n):
            sg = sigma[s, i]
            inner1 = val[0, i]
            slope = (val[1, i] - inner1) / (_F32(1.5) * sg)
            step_h = inner1 - slope * _F32(2.0) * sg - val[2, i]
            # the division for every edge (inf or NaN by a zero step, discarded), then the
            # select: a branch round it kept the loop from vectorising
            shift = slope * (sg * sg) / step_h
            shift = shift if step_h > _F32(1e-3) else _F32(0.0)
            shift = min(max(shift, _F32(-0.5) * sg), _F32(1.5) * sg)
            out[s, i] = rows[s, i] - float(sgn * shift / step)
    return out


def step_basis(u: np.ndarray, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blurred step model's functions at ``u = (x - e) / σ``: the step ``Φ(u)``, the
    shading ramp ``σ G(u)`` (``G`` Φ's integral, ``u Φ + φ``) and the step's derivative along
    e, ``φ(u)`` (also used by the alignment's bead fit)."""
    from scipy.special import ndtr

    small_phi = np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)
    big_phi = ndtr(u)
    return big_phi, sigma * (u * big_phi + small_phi), small_phi


def _step_tables(step_px: float, sigmas: tuple = _STEP_SIGMAS,
                 in_sigmas: float = _STEP_IN_SIGMAS):
    """The step model's tables for samples ``step_px`` apart (see :func:`find_edges`, step 6),
    per blur σ of ``sigmas``, on a window of samples ``j = 0 … K-1`` round the
    sample nearest the edge (``k0`` of them outside it, outside → inside): the rows of the
    least-squares solver (the pseudo-inverse) of the basis ``[1, Φ(u), σ G(u), φ(u)]``,
    ``u = x / σ``, over the samples from ``_STEP_OUT_PX`` outside to ``in_sigmas`` σ
    inside the edge (zero elsewhere). The model is linearised within a quarter px of the edge
    (:func:`_step_phases`): at Q phases, the edge ``psi`` samples inwards of the window's
    sample ``k0`` (``psi`` the middle of one of Q equal bins of [-0.5, 0.5); 0 at Q = 1),
    ``x = (j - k0 - psi) step_px``; the Φ and φ rows are ``solve`` (S, Q, K, 2). Also, for the
    blur's choice, linearised at the nearest sample (``psi`` 0), the whole solver and the
    basis, both (S, 4, K), and which samples each σ uses (S, K). Returns ``(sigmas (S,), k0,
    solve, solve4, basis4, used, span (S, 2))``, float32 / bool / int64, ``span`` the first
    and last sample each σ uses at any phase."""
    key = sigmas if sigmas is _STEP_SIGMAS else tuple(float(x) for x in sigmas)
    return _step_tables_cached(float(step_px), key, float(in_sigmas))


@lru_cache(maxsize=64)
def _step_phases(step_px: float) -> int:
    """Phases of the edge between samples the step model is linearised at: the linearisation
    point within a quarter px of the edge, as the nearest sample is at 0.5 px (1 phase; 2 at
    1 px). Linearised at the nearest sample 1 px apart, half a px off the edge at worst, the
    edges' error p95 grew 0.230 -> 0.266 px (clean bright seed 8, 25 frames; 0.215 with two
    phases)."""
    return max(int(round(step_px / 0.5)), 1)


def _step_grid(step_px: float, sigma_max: float,
               in_sigmas: float = _STEP_IN_SIGMAS) -> tuple[np.ndarray, int, np.ndarray]:
    """The step model's window (see :func:`_step_tables`) for blurs up to ``sigma_max``,
    reaching ``in_sigmas`` σ inside the edge: the
    phases' places ``psi`` (Q,), ``k0`` (samples outside the nearest one) and the samples
    ``j`` from the nearest one, outside negative."""
    q = _step_phases(step_px)
    psi = (np.arange(q) + 0.5) / q - 0.5                                            # (Q,)
    reach = psi.max()
    k0 = int(np.floor(_STEP_OUT_PX / step_px + reach + 1e-9))
    k1 = int(np.floor(in_sigmas * sigma_max / step_px + reach + 1e-9))
    return psi, k0, np.arange(-k0, k1 + 1)


def _step_used(x, sigma, in_sigmas=_STEP_IN_SIGMAS):
    """Which samples ``x`` px from the edge (inwards positive) the step model at blur
    ``sigma`` fits: from ``_STEP_OUT_PX`` outside to ``in_sigmas`` σ inside."""
    return (x <= in_sigmas * sigma + 1e-9) & (x >= -_STEP_OUT_PX - 1e-9)


@lru_cache(maxsize=64)
def _step_tables_cached(step_px: float, sigmas: tuple,
                        in_sigmas: float = _STEP_IN_SIGMAS):
    sig = np.asarray(sigmas, np.float64)
    q = _step_phases(step_px)
    psi, k0, j = _step_grid(step_px, float(sig.max()), in_sigmas)

    def tables(x):                                                 # x (K,) → (S, 4, K) ×2, (S, K)
        u = x[None, :] / sig[:, None]                                             # (S, K)
        used = _step_used(x[None, :], sig[:, None], in_sigmas)
        big_phi, gg, small_phi = step_basis(u, sig[:, None])
        basis = np.stack([np.ones_like(u), big_phi, gg, small_phi], 1) * used[:, None, :]
        return np.linalg.pinv(np.swapaxes(basis, 1, 2)), basis, used          # (S, 4, K)

    solve4, basis4, used = tables(j * step_px)
    solve = np.empty((len(sig), q, len(j), 2))
    any_used = used.copy()
    for a in range(q):
        sa, _, ua = tables((j - psi[a]) * step_px)
        solve[:, a] = np.swapaxes(sa[:, [1, 3]], 1, 2)
        any_used |= ua
    last = any_used.shape[1] - 1 - np.argmax(any_used[:, ::-1], 1)
    span = np.stack([np.argmax(any_used, 1), last], 1).astype(np.int64)
    return (sig.astype(np.float32), k0, np.ascontiguousarray(solve, np.float32),
            np.ascontiguousarray(solve4, np.float32),
            np.ascontiguousarray(basis4, np.float32), used, span)


@lru_cache(maxsize=64)
def _curv_tables(step_px: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The cap's curvature for the step model at blur ``sigma`` (see :func:`find_edges`, step
    6), on the window and phases of :func:`_step_tables` ``(step_px, (sigma,))``: the rows of
    the least-squares solver of ``[1, Φ, σG, σ²H, φ]`` for ``Φ`` and ``σ²H`` (``H`` G's
    integral, ``((u² + 1) Φ + u φ) / 2``: the half-parabola ``x² / 2`` inside the edge,
    blurred), (1, Q, K, 2) float32, and the projection of ``σ²H`` on the step model's own
    ``Φ`` and ``φ`` rows, (1, Q, 2) float64 (what a curvature adds to its coefficients)."""
    sig = float(sigma)
    psi, _, j = _step_grid(step_px, sig)
    q = len(psi)
    solve5 = np.empty((1, q, len(j), 2))
    proj = np.empty((1, q, 2))
    for a in range(q):
        x = (j - psi[a]) * step_px
        used = _step_used(x, sig)
        u = x / sig
        big_phi, gg, small_phi = step_basis(u, sig)
        hh = sig * sig * 0.5 * ((u * u + 1.0) * big_phi + u * small_phi)
        basis = np.stack([np.ones_like(u), big_phi, gg, hh, small_phi], 1) * used[:, None]
        solve5[0, a] = np.linalg.pinv(basis)[[1, 3]].T
        proj[0, a] = np.linalg.pinv(basis[:, [0, 1, 2, 4]])[[1, 3]] @ (hh * used)
    return np.ascontiguousarray(solve5, np.float32), proj


@kernel
def _curv_kernel(p, rows, use, k0, solve5, span, every):
    """Each edge's cap curvature (see :func:`find_edges`, step 6) at every ``every``-th
    station: on the step model's window round the edge of ``rows`` (2, N) where ``use``
    holds (the same sample and phase as :func:`_step_kernel`), the fit of
    ``[1, Φ, σG, σ²H, φ]`` (``solve5``, :func:`_curv_tables`; ``span`` the first and last
    sample it uses), ``c_H / c_Φ`` per px; NaN at the other stations, where the window
    leaves the profile or the fitted step is not positive. Returns (2, N) float64."""
    m, n = p.shape
    nq = solve5.shape[1]
    k_len = solve5.shape[2]
    out = np.full((2, n), np.nan)
    nk = (n + every - 1) // every
    i0 = np.empty(nk, np.int64)
    qi = np.zeros(nk, np.int64)
    fits = np.empty(nk, np.bool_)
    c_phi = np.empty(nk, np.float32)
    c_h = np.empty(nk, np.float32)
    for s in range(2):
        sign = 1 - 2 * s
        safe = k0 if sign > 0 else k_len - 1 - k0
        for k in range(nk):
            i = k * every
            r = _step_window(m, rows[s, i], sign, k0, k_len) if use[s, i] else -1
            fits[k] = r >= 0
            i0[k] = r if r >= 0 else safe
            qi[k] = 0
            if nq > 1 and r >= 0:
                qi[k] = min(max(int(np.floor((sign * (rows[s, i] - r) + 0.5) * nq)), 0), nq - 1)
            c_phi[k] = 0.0
            c_h[k] = 0.0
        for j in range(span[0, 0], span[0, 1] + 1):
            off = sign * (j - k0)
            for k in range(nk):
                v = p[np.uint64(i0[k] + off), np.uint64(k * every)]
                c_phi[k] += solve5[0, qi[k], j, 0] * v
                c_h[k] += solve5[0, qi[k], j, 1] * v
        for k in range(nk):
            if fits[k] and c_phi[k] > _F32(1e-3):
                out[s, k * every] = np.float64(c_h[k]) / np.float64(c_phi[k])
    return out


def _cap_curvature(p, rows, use, k0, span, solve5, closed) -> np.ndarray:
    """A bright bead's cap curvature per edge, shared along the path (see :func:`find_edges`,
    step 6): each side's median of :func:`_curv_kernel`'s (``solve5`` of
    :func:`_curv_tables`) over ``_CURV_STATIONS`` stations (0 where none was fitted). (2, N)
    float64."""
    n = p.shape[1]
    half = min(_CURV_STATIONS // 2, max(n // 4, 1))
    every = -(-half // _CURV_SAMPLES)
    # the median reads every every-th station's (_along_median): only those are fitted
    raw = _curv_kernel(p, rows, use, k0, solve5, span, every)
    kappa = np.empty_like(raw)
    for s in range(2):
        kappa[s] = _along_median(raw[s], np.isfinite(raw[s]), half, closed, every)
    kappa[~np.isfinite(kappa)] = 0.0
    return kappa


def _step_blur(sigmas: np.ndarray, med: np.ndarray) -> float:
    """The frame's blur from the step model's median residual per candidate (``sigmas``, an
    even grid): the vertex of the parabola through the best one and its neighbours, to
    ``_STEP_SIGMA_ROUND`` px (a blur off by 0.1 px moves a plain step's edge by ~0.05 px: the
    ramp takes up the misfit on one side only); the middle candidate where none fits."""
    # on Python floats: numpy's calls on six values took 6 us a frame, these 3 (the same float64
    # operations; the grid's step stays a difference in the sigmas' own dtype)
    # (the first smallest finite one by a plain loop over .tolist(): 6 -> 3 us a call)
    vals = med.tolist()
    k = -1
    for c, x in enumerate(vals):
        if math.isfinite(x) and (k < 0 or x < vals[k]):
            k = c
    if k < 0:
        return float(sigmas[len(sigmas) // 2])
    s = float(sigmas[k])
    if 0 < k < len(sigmas) - 1 and math.isfinite(vals[k - 1]) and math.isfinite(vals[k + 1]):
        den = vals[k - 1] - 2.0 * vals[k] + vals[k + 1]
        if den > 0:
            s += float(sigmas[1] - sigmas[0]) * min(max(0.5 * (vals[k - 1] - vals[k + 1]) / den,
                                                       -0.5), 0.5)
    return round(s / _STEP_SIGMA_ROUND) * _STEP_SIGMA_ROUND


@kernel
def _step_window(m, e, sign, k0, k_len):
    """The sample nearest edge row ``e``; -1 where the window (``k0`` samples outside it,
    ``k_len`` in all, running inwards: ``sign`` +1 the left edge) leaves the profile."""
    if e != e:
        return -1
    i0 = int(np.rint(e))
    lo = i0 - k0 if sign > 0 else i0 - (k_len - 1 - k0)
    hi = i0 + (k_len - 1 - k0) if sign > 0 else i0 + k0
    if lo < 0 or hi > m - 1:
        return -1
    return i0


@kernel
def _step_sigma(p, rows, use, shade, sigmas, k0, solve4, basis4, used, span, every):
    """The step model's fit per candidate blur: the median over the edges ``rows`` (2, N) of
    every ``every``-th station where ``use`` holds and whose shading shift ``shade`` (2, N)
    is at most the median of theirs (the flatter flanks, where the model is closest to
    exact) of the linearised fit's mean squared residual (background, step, ramp and the
    move, round the sample nearest the edge). Returns (S,) float64, inf where none fits."""
    m, n = p.shape
    n_s = sigmas.shape[0]
    k_len = solve4.shape[2]
    cnt = 0
    for i in range(0, n, every):
        for s in range(2):
            if use[s, i]:
                cnt += 1
    med = np.full(n_s, np.inf)
    if cnt == 0:
        return med
    sh = np.empty(cnt, np.float64)
    cnt = 0
    for i in range(0, n, every):
        for s in range(2):
            if use[s, i]:
                sh[cnt] = abs(shade[s, i])
                cnt += 1
    flat = np.median(sh)
    # the windows of the edges fitted, a column each (K, edges), so that each sum below runs
    # across edges: the same sums in the same order per edge, but neighbouring edges' chains
    # of additions overlap and vectorise instead of each waiting on its own (measured on the
    # gap ends' call, 278 stations: 60 → 17 us)
    wins = np.empty((k_len, cnt), np.float32)
    k = 0
    for i in range(0, n, every):
        for s in range(2):
            if not use[s, i] or abs(shade[s, i]) > flat:
                continue
            sign = 1 - 2 * s
            i0 = _step_window(m, rows[s, i], sign, k0, k_len)
            if i0 < 0:
                continue
            for j in range(k_len):
                wins[j, k] = p[i0 + sign * (j - k0), i]
            k += 1
    res = np.empty((n_s, cnt), np.float64)
    c0 = np.empty(k, np.float64)
    c1 = np.empty(k, np.float64)
    c2 = np.empty(k, np.float64)
    c3 = np.empty(k, np.float64)
    r2 = np.empty(k, np.float64)
    for c in range(n_s):
        c0[:] = 0.0
        c1[:] = 0.0
        c2[:] = 0.0
        c3[:] = 0.0
        r2[:] = 0.0
        for j in range(span[c, 0], span[c, 1] + 1):
            s0 = solve4[c, 0, j]
            s1 = solve4[c, 1, j]
            s2 = solve4[c, 2, j]
            s3 = solve4[c, 3, j]
            w = wins[j]
            for e in range(k):
                c0[e] += s0 * w[e]
                c1[e] += s1 * w[e]
                c2[e] += s2 * w[e]
                c3[e] += s3 * w[e]
        nu = 0
        for j in range(span[c, 0], span[c, 1] + 1):
            if used[c, j]:
                b0 = basis4[c, 0, j]
                b1 = basis4[c, 1, j]
                b2 = basis4[c, 2, j]
                b3 = basis4[c, 3, j]
                w = wins[j]
                for e in range(k):
                    f = c0[e] * b0 + c1[e] * b1 + c2[e] * b2 + c3[e] * b3
                    r2[e] += (w[e] - f) ** 2
                nu += 1
        for e in range(k):
            res[c, e] = r2[e] / max(nu, 1)
    if k:
        for c in range(n_s):
            med[c] = np.median(res[c, :k])
    return med


@kernel
def _step_kernel(p, rows, use, sigma_idx, sigmas, k0, solve, span, step_px, move_px, tol_px,
                 contrast, kappa, proj):
    """One Gauss–Newton step of the step model (see :func:`find_edges`, step 6) from every
    edge of ``rows`` (2, N; side 0 the left, rising inwards) where ``use`` holds, blur
    ``sigmas[sigma_idx]``: the model linearised within a quarter px of the edge (the sample
    nearest it, at the place of its phase's bin; :func:`_step_tables`), which moves by
    ``-σ c_φ / c_Φ`` (at most ``move_px``) from there. An edge whose window leaves the
    profile, whose fitted step is not positive, or whose background (the window's samples
    more than ``_STEP_FLAT_SIGMAS`` σ outside) is not flat by the walk's tolerance
    (:func:`_walk_tol`: a dark speck beside the flank) stays. Returns the new rows (2, N) float64.

    Vectorised across stations: for each window sample, a pass over the stations (their
    samples lie in neighbouring rows of ``p``)."""
    m, n = p.shape
    nq = solve.shape[1]
    k_len = solve.shape[2]
    c = sigma_idx
    sig = sigmas[c]
    out = rows.copy()
    i0 = np.empty(n, np.int64)
    qi = np.zeros(n, np.int64)
    fits = np.empty(n, np.bool_)
    c_phi = np.empty(n, np.float32)
    c_dphi = np.empty(n, np.float32)
    lo_v = np.empty(n, np.float32)
    hi_v = np.empty(n, np.float32)
    un = np.uint64(n)
    for s in range(2):
        sign = 1 - 2 * s
        safe = k0 if sign > 0 else k_len - 1 - k0     # a row whose window fits (skipped edges)
        for i in range(n):
            r = _step_window(m, rows[s, i], sign, k0, k_len) if use[s, i] else -1
            fits[i] = r >= 0
            i0[i] = r if r >= 0 else safe
            if nq > 1 and r >= 0:
                # the phase's bin of the edge's place inwards of its nearest sample
                qi[i] = min(max(int(np.floor((sign * (rows[s, i] - r) + 0.5) * nq)), 0), nq - 1)
            c_phi[i] = 0.0
            c_dphi[i] = 0.0
        # the background's spread, for the flatness test
        j_flat = min(k0 - int(np.ceil(_STEP_FLAT_SIGMAS * sig / step_px - 1e-6)), k0)
        for i in range(n):
            lo_v[i] = np.inf
            hi_v[i] = -np.inf
        # one pass over the window's samples for the fit and the flatness test both (the
        # background's samples read once; measured on the 2448×2048 bench frame: 0.32 → 0.29 ms)
        # (unsigned indices: no negative-index wrap to select; every row read lies in the
        # profile. Measured alone on the 2448×2048 bench frame: 0.34 → 0.29 ms)
        for j in range(span[c, 0], max(span[c, 1], j_flat) + 1):
            off = sign * (j - k0)
            if j <= span[c, 1]:
                if nq == 1:
                    t_phi = solve[c, 0, j, 0]
                    t_dphi = solve[c, 0, j, 1]
                    if j <= j_flat:
                        for i in range(un):
                            v = p[np.uint64(i0[i] + off), i]
                            c_phi[i] += t_phi * v
                            c_dphi[i] += t_dphi * v
                            lo_v[i] = min(lo_v[i], v)
                            hi_v[i] = max(hi_v[i], v)
                    else:
                        for i in range(un):
                            v = p[np.uint64(i0[i] + off), i]
                            c_phi[i] += t_phi * v
                            c_dphi[i] += t_dphi * v
                else:
                    for i in range(un):
                        v = p[np.uint64(i0[i] + off), i]
                        c_phi[i] += solve[c, qi[i], j, 0] * v
                        c_dphi[i] += solve[c, qi[i], j, 1] * v
                        if j <= j_flat:
                            lo_v[i] = min(lo_v[i], v)
                            hi_v[i] = max(hi_v[i], v)
            else:
                for i in range(un):
                    v = p[np.uint64(i0[i] + off), i]
                    lo_v[i] = min(lo_v[i], v)
                    hi_v[i] = max(hi_v[i], v)
        for i in range(n):
            if not fits[i] or not c_phi[i] > _F32(1e-3) or \
                    hi_v[i] - lo_v[i] > _walk_tol(tol_px, contrast[i]):
                continue
            kq = kappa[s, i]
            if kq != 0.0:
                # the cap's curvature κ: the profile's σ²H part (κ × the step) adds
                # proj × κ × step to c_Φ and c_φ
                step = c_phi[i] / (1.0 + kq * proj[c, qi[i], 0])
                if not step > 1e-3:
                    continue
                move = -sig * (c_dphi[i] - step * kq * proj[c, qi[i], 1]) / step
            else:
                move = -sig * c_dphi[i] / c_phi[i]
            move = min(max(move, _F32(-move_px)), _F32(move_px))
            psi = (qi[i] + 0.5) / nq - 0.5
            out[s, i] = i0[i] + sign * (psi + float(move) / step_px)
    return out


@kernel
def _window_add(buf, cnt, x):
    """Insert ``x`` into the sorted ``buf[:cnt]``; returns the new count."""
    j = cnt
    while j > 0 and buf[j - 1] > x:
        buf[j] = buf[j - 1]
        j -= 1
    buf[j] = x
    return cnt + 1


@kernel
def _window_find(buf, cnt, x):
    """Index of a value equal to ``x`` in the sorted ``buf[:cnt]`` (binary search)."""
    lo, hi = 0, cnt - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if buf[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def _window_replace(buf, cnt, old, new):
    """Replace one ``old`` in the sorted ``buf[:cnt]`` by ``new``, keeping it sorted: the
    values between the two places move by one."""
    j = _window_find(buf, cnt, old)
    while j > 0 and buf[j - 1] > new:
        buf[j] = buf[j - 1]
        j -= 1
    while j < cnt - 1 and buf[j + 1] < new:
        buf[j] = buf[j + 1]
        j += 1
    buf[j] = new


@kernel
def _window_remove(buf, cnt, x):
    """Remove one ``x`` from the sorted ``buf[:cnt]``; returns the new count."""
    for a in range(_window_find(buf, cnt, x), cnt - 1):
        buf[a] = buf[a + 1]
    return cnt - 1


@kernel
def _plain_values(values, valid):
    """Whether every valid value is finite and none is -0.0 (which sorts with 0.0 in either
    order)."""
    for i in range(values.shape[0]):
        x = np.float64(values[i])
        if valid[i] and (not np.isfinite(x) or (x == 0.0 and np.signbit(x))):
            return False
    return True


@kernel
def _sel(c, a, b):
    """``a`` if ``c`` else ``b`` (a select, not a branch)."""
    return a if c else b


@kernel
def _running_median9(values, valid, half, wrap, out):
    """:func:`_running_median` (``half`` <= 4, ``wrap``: round a closed path; valid values
    finite, no -0.0) into ``out``: the window in nine sorted registers, +inf for places
    without a valid value, each slide a fixed sequence of compares and selects: the sorted
    buffer's searches and shifts mispredict (measured inside find_edges on the 2448×2048
    bench frame: _along_median, both sides, 0.25 → 0.13 ms)."""
    n = values.shape[0]
    buf = np.full(9, np.inf)
    cnt = 0
    for j in range(-half, half + 1):
        a = j
        if wrap:
            a = a + n if a < 0 else (a - n if a >= n else a)
        if 0 <= a < n and valid[a]:
            buf[cnt] = np.float64(values[a])
            cnt += 1
    buf.sort()
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], \
        buf[6], buf[7], buf[8]
    inf = np.inf
    for i in range(n):
        if cnt:
            mid = cnt // 2
            buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8] = \
                b0, b1, b2, b3, b4, b5, b6, b7, b8
            out[i] = buf[mid] if cnt % 2 else 0.5 * (buf[mid - 1] + buf[mid])
        a = i - half
        b = i + half + 1
        if wrap:
            a = a + n if a < 0 else a
            b = b - n if b >= n else b
        ac = min(max(a, 0), n - 1)
        bc = min(max(b, 0), n - 1)
        leaves = (a == ac) & valid[ac]
        comes = (b == bc) & valid[bc]
        x = _sel(leaves, np.float64(values[ac]), inf)
        y = _sel(comes, np.float64(values[bc]), inf)
        cnt += comes - leaves
        # remove x: its first place r (as many values are smaller); the rest move down
        r = ((b0 < x) + (b1 < x) + (b2 < x) + (b3 < x) + (b4 < x) + (b5 < x) + (b6 < x)
             + (b7 < x) + (b8 < x))
        b0 = _sel(r <= 0, b1, b0)
        b1 = _sel(r <= 1, b2, b1)
        b2 = _sel(r <= 2, b3, b2)
        b3 = _sel(r <= 3, b4, b3)
        b4 = _sel(r <= 4, b5, b4)
        b5 = _sel(r <= 5, b6, b5)
        b6 = _sel(r <= 6, b7, b6)
        b7 = _sel(r <= 7, b8, b7)
        # insert y after the values smaller than it; the rest move up
        b8 = _sel(b7 < y, y, b7)
        b7 = _sel(b6 < y, _sel(b7 < y, b7, y), b6)
        b6 = _sel(b5 < y, _sel(b6 < y, b6, y), b5)
        b5 = _sel(b4 < y, _sel(b5 < y, b5, y), b4)
        b4 = _sel(b3 < y, _sel(b4 < y, b4, y), b3)
        b3 = _sel(b2 < y, _sel(b3 < y, b3, y), b2)
        b2 = _sel(b1 < y, _sel(b2 < y, b2, y), b1)
        b1 = _sel(b0 < y, _sel(b1 < y, b1, y), b0)
        b0 = _sel(b0 < y, b0, y)
    return out


@kernel
def _running_median(values, valid, half, closed):
    """Median of the valid values within ``half`` stations either side of each station
    (float64; the mean of the two middle ones for an even count), the window kept sorted
    as it slides (a station leaving and one coming in cost one move of the values between
    their two places). A closed path wraps round (when it has more than ``2 half + 1``
    stations); a station with no valid value in its window keeps its own value."""
    n = values.shape[0]
    out = values.astype(np.float64)
    if n == 0 or half <= 0:
        return out
    wrap = closed and n > 2 * half + 1
    if half <= 4 and _plain_values(values, valid):
        return _running_median9(values, valid, half, wrap, out)
    buf = np.empty(2 * half + 1, np.float64)
    cnt = 0
    for j in range(-half, half + 1):
        a = j % n if wrap else j
        if 0 <= a < n and valid[a]:
            cnt = _window_add(buf, cnt, np.float64(values[a]))
    for i in range(n):
        if cnt:
            mid = cnt // 2
            out[i] = buf[mid] if cnt % 2 else 0.5 * (buf[mid - 1] + buf[mid])
        # slide: station i - half leaves, i + half + 1 comes in
        a = i - half
        b = i + half + 1
        if wrap:
            a = a + n if a < 0 else a
            b = b - n if b >= n else b
        leaves = a >= 0 and valid[a]
        comes = b < n and valid[b]
        if leaves and comes:
            _window_replace(buf, cnt, np.float64(values[a]), np.float64(values[b]))
        elif leaves:
            cnt = _window_remove(buf, cnt, np.float64(values[a]))
        elif comes:
            cnt = _window_add(buf, cnt, np.float64(values[b]))
    return out


@kernel
def _along_median(values, valid, half, closed, every):
    """:func:`_running_median` over ``half`` stations either side, taken at every
    ``every``-th station (its window holds every ``every``-th station) and linearly
    interpolated between them: for a quantity that changes slowly along the path, about
    ``every`` times less work. Stations beyond the last taken one on an open path keep its
    value; a closed path interpolates across its start."""
    n = values.shape[0]
    if every <= 1 or n < 4 * every:
        return _running_median(values, valid, half, closed)
    m = (n + every - 1) // every
    v = np.empty(m, values.dtype)
    ok = np.empty(m, np.bool_)
    for j in range(m):
        v[j] = values[j * every]
        ok[j] = valid[j * every]
    med = _running_median(v, ok, max(half // every, 1), closed)
    out = np.empty(n, np.float64)
    for j in range(m):
        a = med[j]
        i0 = j * every
        span = min(every, n - i0)
        if j + 1 < m:
            b = med[j + 1]
        elif closed:
            b = med[0]
        else:
            b = a
        step = (b - a) / (every if j + 1 < m else max(span, 1))
        for q in range(span):
            out[i0 + q] = a + step * q
    return out


@inlined
def _step_mad(x, valid, start, every, scale, d):
    """Robust σ (1.4826 × the median absolute deviation, over √2) of ``scale`` × the step
    from each valid value of ``x`` at ``start``, ``start + every``, ... to its valid
    neighbour before it, and how many such steps there were; ``d`` the scratch for them
    (long enough). (0.0, 0) without any."""
    cnt = 0
    for i in range(start, x.shape[0], every):
        if valid[i] and valid[i - 1]:
            d[cnt] = (np.float64(x[i]) - np.float64(x[i - 1])) * scale
            cnt += 1
    if cnt == 0:
        return 0.0, 0
    med = np.median(d[:cnt])
    for j in range(cnt):
        d[j] = abs(d[j] - med)
    return 1.4826 * np.median(d[:cnt]) / np.sqrt(2.0), cnt


@kernel
def _shift_scatter(shift, valid, step_px):
    """How much the shading shift (rows of ``step_px``; (2, N)) scatters from one station to
    the next along the path, px: robust σ (1.4826 × the median absolute deviation) of the
    differences between neighbouring valid edges at about ``_SCATTER_SAMPLES`` places spread
    over the path, over √2 (:func:`_step_mad`); the mean over the sides that have more than 8
    of them. The shading itself varies slowly along the path; this is its estimate's noise."""
    n = shift.shape[1]
    d = np.empty(max(n - 1, 1), np.float64)
    total = 0.0
    sides = 0
    # a few hundred differences tell the scatter as well as all of them, at a fraction of
    # the cost of the two medians
    every = max(n // _SCATTER_SAMPLES, 1)
    for s in range(2):
        sigma, cnt = _step_mad(shift[s], valid[s], every, every, step_px, d)
        if cnt > 8:
            total += sigma
            sides += 1
    return total / sides if sides else 0.0


@kernel
def _median_sorted(buf, cnt):
    """Median of the first ``cnt`` entries of ``buf``, sorted in place (insertion sort)."""
    for a in range(1, cnt):
        x = buf[a]
        k = a
        while k > 0 and buf[k - 1] > x:
            buf[k] = buf[k - 1]
            k -= 1
        buf[k] = x
    return buf[cnt // 2] if cnt % 2 else (buf[cnt // 2 - 1] + buf[cnt // 2]) / _F32(2.0)


@kernel
def _median_dev(buf, cnt, c):
    """``_median_sorted`` of ``abs(buf[:cnt] - c)`` (float32) where ``buf[:cnt]`` is sorted and
    finite: the deviations in order, merged from the two sides of ``c`` outwards (each side's
    rounded differences are in order too), so the same values without a sort; ``buf`` is
    left as it is. In the repair of hard dark frames, whose edges are suspect at thousands of
    stations, two of each station's six sorts of up to 21 values (measured alone,
    :func:`_finish_kernel` on the 23 calls of 16 hard dark 2448×2048 frames: 21.7 → 19.8 ms)."""
    lo_at = (cnt - 1) // 2
    hi_at = cnt // 2
    r = 0
    while r < cnt and buf[r] < c:
        r += 1
    left = r - 1
    lo = _F32(0.0)
    for k in range(hi_at + 1):
        if left >= 0 and (r >= cnt or abs(buf[left] - c) <= abs(buf[r] - c)):
            x = abs(buf[left] - c)
            left -= 1
        else:
            x = abs(buf[r] - c)
            r += 1
        if k == lo_at:
            lo = x
        if k == hi_at:
            return x if cnt % 2 else (lo + x) / _F32(2.0)
    return _F32(np.nan)


@kernel
def _repair_kernel(pos, suspect, ok, closed, half, dev):
    """Suspect edges that stray by more than ``dev`` px from the local trend of their side's
    unsuspect edges within ``half`` stations (at least ``half`` of them) take that trend.

    The trend is a robust line: its slope from the medians of the neighbours before and
    after the station (each side needs ``half // 4`` of them, else the slope is 0), its level
    the median of the neighbours with that slope taken out. An edge moves along the path
    where the bead is shifted sideways or widens (an offset or a width ramp, 0.5 px per
    station and more); a flat median there would put the repaired edge px off. The line is
    used only where its residuals' median is below the flat median's.
    The neighbours are read from ``pos`` as given, not as repaired."""
    n = pos.shape[0]
    out = pos.copy()
    w = 2 * half + 1
    vl = np.empty(w, np.float32)
    vr = np.empty(w, np.float32)
    jl = np.empty(w, np.float32)
    jr = np.empty(w, np.float32)
    val = np.empty(w, np.float32)
    off = np.empty(w, np.float32)
    srt = np.empty(w, np.float32)
    for i in range(n):
        if not (suspect[i] and ok[i]):
            continue
        cnt = 0
        nl = 0
        nr = 0
        for j in range(-half, half + 1):
            a = i + j
            if closed:
                a %= n
            elif a < 0 or a >= n:
                continue
            if ok[a] and not suspect[a] and pos[a] == pos[a]:
                val[cnt] = pos[a]
                off[cnt] = _F32(j)
                cnt += 1
                if j < 0:
                    vl[nl] = pos[a]
                    jl[nl] = _F32(j)
                    nl += 1
                elif j > 0:
                    vr[nr] = pos[a]
                    jr[nr] = _F32(j)
                    nr += 1
        if cnt < half:
            continue
        slope = _F32(0.0)
        need = max(half // 4, 1)
        if nl >= need and nr >= need:
            dj = _median_sorted(jr, nr) - _median_sorted(jl, nl)
            slope = (_median_sorted(vr, nr) - _median_sorted(vl, nl)) / dj
            # the neighbours are those before and after (station i is suspect): their values
            # in order are the merge of the two sides' just sorted, without a sort of them all
            # (on hard dark frames, a third of the repair's sorting)
            a = 0
            b = 0
            for t in range(cnt):
                left = b >= nr or (a < nl and vl[a] <= vr[b])
                srt[t] = vl[a] if left else vr[b]
                a += left
                b += not left
            mid = cnt // 2
            flat = srt[mid] if cnt % 2 else (srt[mid - 1] + srt[mid]) / _F32(2.0)
        else:
            for a in range(cnt):
                srt[a] = val[a]
            flat = _median_sorted(srt, cnt)
        # the line is taken only where it fits the neighbours better than a flat level (at
        # a gap's end the neighbours on one side are no bead, and a line through them is not
        # the edge's trend)
        for a in range(cnt):
            val[a] = val[a] - slope * off[a]
            vr[a] = val[a]
        ref = _median_sorted(vr, cnt)
        # the residuals' medians off the sorted values (srt, vr), without sorting them again
        if _median_dev(vr, cnt, ref) >= _median_dev(srt, cnt, flat):
            ref = flat
        if abs(pos[i] - ref) > dev:
            out[i] = ref
    return out


@kernel
def _pooled_sigma(sigma, fit, ok):
    """The blur is the optics' (one per frame, or slowly varying): an edge whose 3-point fit
    failed or gave a σ more than ``_SIGMA_STRAY`` times off the frame's median takes that
    median for its shading correction, whose samples are placed in units of σ. The fit on
    three noisy gradient samples 0.5 px apart scatters widely (on a normal 2448×2048 frame
    its quartiles are 0.40 / 0.58 / 1.01 px), so about half the edges take the median; a
    dust speck or a ramp without a clear peak always does.

    ``sigma`` (2, N) float32, ``fit`` and ``ok`` (2, N) bool; returns a new (2, N) float32
    array (``sigma`` itself where no fit held). The median is numpy's (float32, the mean of
    the two middle values for an even count), by a partial sort."""
    n = sigma.shape[1]
    buf = np.empty(2 * n, np.float32)
    cnt = 0
    positive = True
    for s in range(2):
        for i in range(n):
            if fit[s, i] and ok[s, i]:
                x = sigma[s, i]
                buf[cnt] = x
                positive = positive and x > 0
                cnt += 1
    if cnt == 0:
        return sigma
    half = cnt // 2
    if positive:
        # the blurs are positive (clamped to at least half a sample): the median by radix
        # select on their bits, without the data-dependent branches of a partition
        # (measured on the 2448×2048 bench frame, 15k edges: 0.19 → 0.05 ms)
        s_frame = _kth_positive(buf[:cnt], half)
        if cnt % 2 == 0:
            below = _F32(0.0)
            less = 0
            for j in range(cnt):
                x = buf[j]
                less += x < s_frame
                below = max(below, x if x < s_frame else _F32(0.0))
            # the value below the middle one: the largest smaller one if half the values
            # are smaller, else the middle one again
            if less < half:
                below = s_frame
            s_frame = (below + s_frame) / _F32(2.0)
    else:
        part = np.partition(buf[:cnt], half)
        s_frame = part[half]
        if cnt % 2 == 0:
            below = part[0]
            for j in range(1, half):
                below = max(below, part[j])
            s_frame = (below + s_frame) / _F32(2.0)
    hi = _F32(_SIGMA_STRAY) * s_frame
    lo = s_frame / _F32(_SIGMA_STRAY)
    out = np.empty_like(sigma)
    for s in range(2):
        for i in range(n):
            x = sigma[s, i]
            out[s, i] = s_frame if (not fit[s, i] or x > hi or x < lo) else x
    return out


@kernel
def _kth_positive(values, k):
    """The ``k``-th smallest (from 0) of ``values``, float32, all positive (not NaN): a
    positive float's bits, read as an integer, sort as the float does, so three counting
    passes over 11, 10 and 10 of the bits find it, each over the values left in the bin that
    holds it."""
    keys = values.view(np.int32)
    left = np.empty(keys.shape[0], np.int32)
    nl = keys.shape[0]
    for shift, bits in ((20, 11), (10, 10), (0, 10)):
        src = keys if shift == 20 else left
        mask = (1 << bits) - 1
        hist = np.zeros(1 << bits, np.int64)
        for j in range(nl):
            hist[(src[j] >> shift) & mask] += 1
        b = 0
        while k >= hist[b]:
            k -= hist[b]
            b += 1
        c = 0
        for j in range(nl):
            x = src[j]
            left[c] = x
            c += ((x >> shift) & mask) == b
        nl = c
    return left[:1].view(np.float32)[0]


# ----------------------------------------------------------------------------------------
# The stages


@lru_cache(maxsize=64)
def _box_sizes(step_px: float) -> tuple[int, int]:
    """The locator's flank box size and the gap between bead and flank, rows."""
    return max(int(round(2.0 / step_px)), 1), max(int(round(1.5 / step_px)), 1)


def _locate_cs(cs: np.ndarray, width_px: float, step_px: float, halves: bool = False):
    flank, margin = _box_sizes(step_px)
    return _locate_kernel(cs, float(width_px), float(step_px), flank, margin,
                          _SCALES_F64, _WIDER_MARGIN, bool(halves))


def _locate(p: np.ndarray, width_px: float, step_px: float, halves: bool = False):
    """Bead centre row, contrast and background level at every station of ``p`` (M, N), by
    a multi-scale difference of boxes.

    At each scale the response is the mean of the bead's inner part minus the brighter of
    the two flanks just outside it: a bead must stand out on both sides, which a step (the
    glass edge, the frit's inner edge) does not. With ``halves``, at scales wider than
    nominal the inner part's level is the lower of its two halves' means (a dark bead short
    of contrast, see the module's notes). Returns (centre, contrast, left flank, right flank,
    width in rows); contrast -inf and the rest 0 where no scale fits.
    """
    cs, _ = _cumsums(np.ascontiguousarray(p, np.float32), 1)
    return _locate_cs(cs, width_px, step_px, halves)


def _locate_decimated(pc: np.ndarray, width_px: float, step_px: float, every: int,
                      sums: tuple | None = None, halves: bool = False):
    """:func:`_locate` at every ``every``-th station, then each station takes the better of
    its two nearest located stations' centre and width, evaluated on its own profile. The
    bead moves slowly along the path, so a neighbour's centre is this station's centre to
    within a sample or two; the contrast stays per station, so gap ends keep their station.
    ``sums``: ``_cumsums(pc, every)`` where the smoothing made them."""
    n = pc.shape[1]
    if every <= 1 or n < 2 * every:
        return _locate(pc, width_px, step_px, halves)
    cs, cse = _cumsums(pc, every) if sums is None else sums
    c_s, _, _, _, w_s = _locate_cs(cse, width_px, step_px, halves)
    flank, margin = _box_sizes(step_px)
    wide = _WIDE * float(width_px) / float(step_px)
    return _pick_kernel(cs, c_s, w_s, every, flank, margin, wide, _WIDER_MARGIN, bool(halves))


def _walk_sizes(w_rows: np.ndarray, step_px: float, flat_px: float = _FLAT_PX,
                nominal_rows: float = 0.0) -> tuple[int, int]:
    """The flatness test's span and the walk's length (rows) for beads ``w_rows`` wide (and
    at least ``nominal_rows``)."""
    f = max(int(round(flat_px / step_px)), 1)
    # the float32 arithmetic in one compiled call: numpy's scalar calls took ~4 us a call
    kmax = int(_walk_len(w_rows, np.float32(nominal_rows), np.float32(6.0 / step_px)))
    return f, kmax + f + 1


@kernel
def _walk_len(w_rows, nominal, six):
    """``ceil(0.3 max(w_rows.max(), nominal) + six)`` in float32, as :func:`_walk_sizes` had
    it in numpy scalars (0 for the maximum of no rows)."""
    w = _F32(w_rows.max()) if w_rows.shape[0] else _F32(0.0)
    w = max(w, nominal)
    return np.ceil(_F32(0.3) * w + six)


def _side_edge(p, center, w_rows, bg_flank, d, step_px, tol):
    """Where the profile leaves the local background on one side of every station of ``p``
    (M, N): ``d`` = -1 the left edge, +1 the right edge. Returns (row, ok), the row
    fractional (float64).

    Walking outwards from a point a quarter width inside the bead:

    1. The local background is the first place where the profile is flat (changes by at
       most ``tol`` over 2 px) and has come down at least half way from the bead towards
       the locator's flank level. Whatever lies farther out (the glass edge, a glare
       streak, halftone dots) does not set this side's level.
    2. The edge sample is the first one whose departure from that level is at most 20 %
       of the bead's departure at the starting point, interpolated linearly; it is refined
       afterwards.
    """
    f, kmax = _walk_sizes(np.asarray(w_rows), step_px)
    return _side_kernel(np.ascontiguousarray(p, np.float32), np.asarray(center, np.int64),
                        np.asarray(w_rows, np.float32), np.asarray(bg_flank, np.float32),
                        int(d), f, kmax, np.asarray(tol, np.float32), _dip_rows(step_px))


@lru_cache(maxsize=64)
def _diff_rows(step_px: float) -> int:
    """The rows the gradient's differences span (step 4): about 1 px."""
    return max(int(round(1.0 / step_px)), 1)


@lru_cache(maxsize=64)
def _dip_rows(step_px: float) -> int:
    return max(int(round(_DIP_PX / step_px)), 1)


@dataclass(frozen=True, eq=False)
class _Front:
    """find_edges' first steps at one smoothing along the path: the noise, the profiles
    smoothed (``p``; ``pc`` those the locator and the walk read, ``po`` the same before a
    dark bead's ridge was bridged) and the locator's boxes per station; and the call's
    arguments, for the steps after."""

    step_px: float
    bright: bool
    width_px: float
    smooth_stations: int
    closed: bool
    noise: float
    dec: int
    cstep: float
    p: np.ndarray
    pc: np.ndarray
    po: np.ndarray
    center: np.ndarray
    contrast: np.ndarray
    bg_l: np.ndarray
    bg_r: np.ndarray
    w_rows: np.ndarray


def _front(prof: np.ndarray, *, step_px: float, bright: bool, width_px: float,
           smooth_stations: int, closed: bool, noise: float | None = None,
           halves: bool = False) -> _Front:
    """Steps 1 and 2 of :func:`find_edges` over ``smooth_stations`` (the noise measured
    unless given)."""
    m = prof.shape[0]
    # the bead and its edges are found to a sample on a 1 px grid (every other sample at
    # 0.5 px, every sample at 1 px): half the work, and the edge is then refined on the full
    # profile
    dec = max(int(round(1.0 / step_px)), 1) if m >= 16 else 1
    cstep = step_px * dec
    if noise is None:
        # first, while the profiles are still in the cache from sampling: it reads a
        # scattered subset of them (measured: 0.08 ms here, 0.29 ms after the locator)
        noise = _noise(prof, 1)
    p, pc, po, sums = _prepare(prof, bright, smooth_stations, closed, dec, width_px, cstep)
    center, contrast, bg_l, bg_r, w_rows = _locate_decimated(pc, width_px, cstep, _LOCATE_EVERY,
                                                             sums, halves=halves)
    return _Front(step_px, bright, width_px, smooth_stations, closed, noise, dec, cstep, p, pc,
                  po, center, contrast, bg_l, bg_r, w_rows)


def find_edges(prof: np.ndarray, *, step_px: float, bright: bool, width_px: float,
               smooth_stations: int = 3, closed: bool = False,
               max_smooth_stations: int | None = None,
               typical_of: np.ndarray | None = None, blur_px: float | None = None) -> Edges:
    """Find the bead's edges on the profiles of N stations, M samples each, ``step_px`` apart
    along the normals.

    Parameters
    ----------
    prof : (M, N) uint8 or float32
        Profiles, grey levels, as :func:`~vision_qc.engine.sampling.sample_profiles` gives
        them: column i is station i's profile, row ``M // 2`` the path.
    step_px : float
        Sample spacing along the normal, px.
    bright : bool
        True when the bead is brighter than its surroundings.
    width_px : float
        Nominal bead width, px (sets the scales searched and how far edges may lie).
    smooth_stations : int
        Odd number of neighbouring stations averaged before finding edges.
    closed : bool
        The stations form a loop (smoothing wraps round).
    max_smooth_stations : int, optional
        On a frame whose bright bead barely stands out of the noise (typical contrast under
        ``_SNR_SMOOTH`` times the noise of one sample), profiles are averaged over more
        stations, up to this many, so that the edges' scatter along the path stays that of a
        clear frame; a dark bead only where even this many leave it short of contrast (see
        the module's notes). None: always ``smooth_stations``. Such a call's
        :attr:`Edges.usual` keeps its first steps at ``smooth_stations``, from which
        :func:`edges_near` finds the edges at that smoothing round a few stations.
    typical_of : (N,) bool, optional
        The stations whose contrast sets the frame's typical contrast for that decision (a
        bead still being laid: the part judged so far); None: all.
    blur_px : float, optional
        The frame's blur as step 6 sees it, measured elsewhere (on a clean step:
        :func:`~vision_qc.engine.blur.clean_step_blur`); None: step 6 chooses it from the
        bead's flanks.
    """
    m, n = prof.shape
    if n == 0:
        empty = np.zeros(0, np.float32)
        return Edges(empty, empty, np.zeros(0, bool), empty, empty, int(smooth_stations), empty)
    prof = np.ascontiguousarray(prof)
    usual = _front(prof, step_px=step_px, bright=bright, width_px=width_px,
                   smooth_stations=smooth_stations, closed=closed)
    contrast = usual.contrast
    k, shortfall = _noise_aware_stations(contrast if typical_of is None else contrast[typical_of],
                                         usual.noise, smooth_stations,
                                         max_smooth_stations, n, at_cap=not bright)
    front = usual
    if k > smooth_stations:
        # a dark bead's wider boxes by the lower of their halves: bead and the frit beside it
        # lifted by glare are not one wide bead (see the module's notes)
        front = _front(prof, step_px=step_px, bright=bright, width_px=width_px,
                       smooth_stations=k, closed=closed, noise=usual.noise, halves=not bright)
        if bright:
            contrast = front.contrast
        # else the contrast, which decides presence (and the walk's tolerance), stays that of
        # the usual resolution, as the widths' judging does: averaged over up to 12 mm, a
        # dark bead's short gap kept its contrast (hard dark seed 7: gap recall 0.96 -> 0.94)
    noisy = k > smooth_stations
    left, right, found, sigma_px = _edges_after(front, contrast, shortfall, noisy,
                                                blur_px=blur_px)
    return Edges(left_px=left, right_px=right, found=found, contrast=contrast,
                 sigma_px=sigma_px, smooth_stations=int(front.smooth_stations),
                 flank_step=np.abs(front.bg_l - front.bg_r), usual=usual if noisy else None)


# how far beyond the stations asked for edges_near computes the edges: the speck and repair
# steps read ±57 stations round those (see _near_synced), and their scan along the path must
# be seen to step onto a station in the rest (_speck_synced); where it is not, the next
# margin, then the whole frame
_NEAR_MARGINS = (64, 128, 256)


def edges_near(usual: _Front, centres: np.ndarray, reach: int,
               blur_px: float | None = None) -> Edges:
    """The edges that :func:`find_edges` at ``usual.smooth_stations`` finds on the whole
    frame (``max_smooth_stations`` None), at the stations within ``reach`` of each of
    ``centres`` (station indices; round a closed path), bit for bit; NaN edges elsewhere.

    The frame-wide quantities come from every station, as there: the noise and the
    locator's boxes are ``usual``'s (:attr:`Edges.usual` of the call that averaged over more
    stations), the walk and the Gaussian fits run everywhere (the frame's median blur
    replaces stray fits), and so do the shading shift (its scatter sets the averaging along
    the path) and the step model's blur (chosen on ~128 stations, or ``blur_px``, as the
    whole frame's call was given it). Only the step model's
    move, the bridged-speck test and the speck and repair steps run on windows round the
    centres (``_NEAR_MARGINS``): on the hard dark 2448×2048 frames they took 0.9-4.5 ms of
    the whole call's 3.7-8.2, and its smoothing and locator, ``usual``'s, 1.1-1.5 more."""
    centres = np.asarray(centres, np.int64)
    left, right, found, sigma_px = _edges_after(usual, usual.contrast, 1.0, False,
                                                near=(centres, int(reach)), blur_px=blur_px)
    return Edges(left_px=left, right_px=right, found=found, contrast=usual.contrast,
                 sigma_px=sigma_px, smooth_stations=int(usual.smooth_stations),
                 flank_step=np.abs(usual.bg_l - usual.bg_r))


def _near_stations(centres: np.ndarray, near: np.ndarray, n: int,
                   closed: bool) -> np.ndarray | None:
    """The stations (sorted) within ``near`` (per centre) of the centres; None where they
    would be half the path or more (the whole frame is then as quick)."""
    if not centres.size or 2 * int(near.max()) + 1 >= n // 2:
        return None
    have = np.zeros(n, bool)
    for c, h in zip(centres.tolist(), near.tolist()):
        if closed:
            have[np.arange(c - h, c + h + 1) % n] = True
        else:
            have[max(c - h, 0):max(c + h + 1, 0)] = True
    at = np.flatnonzero(have)
    return at if len(at) < n // 2 else None


def _runs(at: np.ndarray) -> list:
    """The runs of consecutive stations of ``at`` (sorted, not empty): [(first, end), ...]."""
    cut = np.flatnonzero(np.diff(at) != 1)
    return list(zip(np.r_[at[0], at[cut + 1]].tolist(), (np.r_[at[cut], at[-1]] + 1).tolist()))


def _columns(a: np.ndarray, runs: list) -> np.ndarray:
    """``a[:, at]`` (contiguous) from the runs of ``at`` (:func:`_runs`): a copy of each run's
    rows instead of a gather by index (measured alone, 815 of 6,379 stations in 3 runs, 99
    rows: 0.10 ms for ``np.ascontiguousarray(a[:, at])``, 0.013 ms)."""
    return np.concatenate([a[:, lo:hi] for lo, hi in runs], axis=1)


def _edges_after(fr: _Front, contrast: np.ndarray, shortfall: float, noisy: bool,
                 near: tuple | None = None, blur_px: float | None = None) -> tuple:
    """find_edges' steps 3 to 6 and the repair from its first steps ``fr``: (left, right,
    found, sigma_px). ``near`` (centres, reach): only the edges of the stations within
    reach of the centres are wanted (:func:`edges_near`), the steps after the blur's choice
    run round them, and the edges elsewhere are NaN."""
    p, pc, po = fr.p, fr.pc, fr.po
    m, n = p.shape
    step_px, dec, cstep, width_px = fr.step_px, fr.dec, fr.cstep, fr.width_px
    bright, closed = fr.bright, fr.closed
    center, w_rows, bg_l, bg_r = fr.center, fr.w_rows, fr.bg_l, fr.bg_r
    smooth_stations = fr.smooth_stations
    # math.sqrt: the same correctly rounded float64 root as np.sqrt, without numpy's scalar call
    tol_px = float(3.0 * math.sqrt(2.0) * fr.noise / math.sqrt(max(smooth_stations, 1)))
    # the flatness test must tell the background from a gentle flank: where averaging along
    # the path could not make up the frame's contrast-to-noise shortfall, it spans that much
    # farther (a flank rises in proportion to the span, the noise of a difference does not)
    # (at least as far as for a nominal bead: a narrow box on one lobe of it walks past a
    # terrace to the bead's far edge)
    f, kmax = _walk_sizes(w_rows, cstep, _FLAT_PX * min(shortfall, _FLAT_STRETCH),
                          width_px / cstep)
    reach = max(int(round(_REFINE_PX / step_px)), 1)
    # the walk reads every dec-th row of p where the smoothing made no decimated copy
    cdec = dec if pc is p else 1
    rows, sigma, fit, ok, suspect, walk = _walk_fit_kernel(p, pc, cdec, center, w_rows, contrast,
                                                           bg_l, bg_r, tol_px, f, kmax,
                                                           _dip_rows(cstep),
                                                           dec, float(step_px), reach,
                                                           _diff_rows(step_px), noisy,
                                                           np.float32(width_px / cstep), not bright,
                                                           smooth_stations // 2, closed,
                                                           _F32(_DEPART_DARK if noisy and not bright
                                                                else _DEPART), not noisy)
    if noisy:
        # a frame short of contrast: the gradient peak within 1 px of the walk's edge and the
        # shading term read noise there (on the hard preset they scatter the edges 1.5× more
        # than the walk and make ~5× the false calls), so the walk's edge is the answer, and
        # no Gaussian fit is run (its blur, the frame's median, fed only sigma_px, which no
        # caller reads: 0.4-0.5 ms of the first call on the hard dark 2448×2048 frames)
        rows = walk
        at = None
    else:
        sigma = _pooled_sigma(sigma, fit, ok)
        shaded = _shade_kernel(p, rows, sigma, float(step_px))
        # the shading shift is read off a few noisy samples per edge; the light and the bead's
        # shape change slowly along the path, so on a noisy frame (its shift scattering from
        # station to station by more than _SHADE_SCATTER px) it is averaged over k stations,
        # k ∝ the scatter squared, as a median (a speck or a misread flank makes a wild shift)
        shift, valid = _shift_valid(shaded, rows, ok, suspect)
        k = min(int((_shift_scatter(shift, valid, float(step_px)) / _SHADE_SCATTER) ** 2),
                _SHADE_STATIONS, n // 4)
        if k >= 3:
            half = k // 2
            every = -(-half // _SHADE_SAMPLES)       # the window holds at most 2 × _SHADE_SAMPLES + 1
            for side in range(2):
                shaded[side] = rows[side] + _along_median(shift[side], valid[side], half, closed,
                                                          every)
        # step 6: the edge where a blurred step with the flank's shading as a ramp fits best
        given = (None if blur_px is None else
                 round(float(blur_px) / _STEP_SIGMA_ROUND) * _STEP_SIGMA_ROUND)
        curved = False
        if given is not None and bright and \
                (fr.noise <= 0 or _most_clear(contrast, float(fr.noise), _CURV_SNR)):
            # a bright bead's cap shading is curved where the model has a line: with the clean
            # step's blur, its curvature shared along the path. Only on a frame clear of the
            # noise: noise biases the curvature's fit towards none (normal bright: stretches
            # without defects read 0.07 px narrow on the median frame). Not where most edges
            # leave the model no room at this blur: read only at the stations read wide, it
            # would push those out (hard bright: a false reject more)
            use = _roomy(shaded, valid, 0.5 * step_px, _STEP_IN_SIGMAS * given)
            curved = np.count_nonzero(use) >= _CURV_ROOMY * np.count_nonzero(valid)
        # how far inside the edge the model reads: on a bright bead fitted with the straight
        # ramp, 3 σ (the cap's shading curves, and a highlight on the lit flank rises 3-4 px
        # in; the longer the window, the more the ramp's slope is theirs and the edge lands
        # inside the footprint). At samples 0.75-1 px apart that leaves 2-3 samples inside the
        # edge, too few to tell the step from the ramp: 4 σ there. Which edges it may move
        # stays decided at 4 σ (below): at 3 σ the ends of thin stretches moved too, read wide
        reach = (_STEP_IN_SIGMAS_LINE if bright and not curved and step_px <= 0.5 + 1e-9
                 else _STEP_IN_SIGMAS)
        if curved:
            blur = given
        elif given is not None and not bright:
            # measured on a clean step (engine.blur): the flanks' own choice takes up what the
            # model misses of their shading (a dark bead's rim darker than its crest)
            blur = given
        else:
            sigmas, k0, _, solve4, basis4, used, span = _step_tables(step_px, _STEP_SIGMAS, reach)
            med = _step_sigma(p, shaded, valid, shift, sigmas, k0, solve4, basis4, used, span,
                              max(n // _STEP_SIGMA_STATIONS, 1))
            blur = _step_blur(sigmas, med)
            if given is not None and abs(blur - given) > _BLUR_STRAY_PX:
                blur = given
        sigmas, k0, solve, _, _, _, span = _step_tables(step_px, (blur,), reach)
        if curved:
            # (its use is that of its blur, above)
            solve5, proj = _curv_tables(float(step_px), float(blur))
            kappa = _cap_curvature(p, shaded, use, k0, span, solve5, closed)
        else:
            # the model's flank reaches _STEP_IN_SIGMAS σ inside the edge: on a bead narrower
            # than twice that it would span the crest (a 7 px bead at 1.4 mm/px), and the edge
            # stays
            use = _roomy(shaded, valid, 0.5 * step_px, _STEP_IN_SIGMAS * blur)
            kappa = np.zeros((2, n))
            proj = np.zeros((1, _step_phases(float(step_px)), 2))
        at = None
        if near is not None:
            # the first margin round every centre, the next round those it did not do for
            margin = np.full(len(near[0]), _NEAR_MARGINS[0])
        while near is not None:
            at = _near_stations(near[0], near[1] + margin, n, closed)
            if at is None:
                break
            # each station's move is its own: the step model on the windows' columns alone
            runs = _runs(at)
            part = _step_kernel(_columns(p, runs), _columns(shaded, runs), _columns(use, runs), 0,
                                sigmas, k0, solve, span, float(step_px), _STEP_MOVE_PX, tol_px,
                                contrast[at], _columns(kappa, runs), proj)
            rows_at = np.full((2, n), np.nan)
            rows_at[:, at] = part
            # outside the windows nothing is read: no edge there (the speck and repair steps
            # then pass over those stations at once)
            ok_at = np.zeros_like(ok)
            ok_at[:, at] = ok[:, at]
            synced = _near_synced(rows_at, ok_at, m, step_px, closed, near, margin, at)
            if synced.all():
                rows, ok = rows_at, ok_at
                break
            at = None
            if margin.max() >= _NEAR_MARGINS[-1]:
                break
            grow = ~synced
            margin[grow] = [min(x for x in _NEAR_MARGINS if x > h) for h in margin[grow]]
        if at is None:
            rows = _step_kernel(p, shaded, use, 0, sigmas, k0, solve, span,
                                float(step_px), _STEP_MOVE_PX, tol_px, contrast, kappa, proj)
    if po is not pc:
        # the closing that bridges a dark bead's ridge also bridges the bead to a dark speck
        # just beside its flank (as dark as the bead): an edge found across a dip bridged
        # farther out than the ridge lies (within ~0.3 of the width of the crest, the
        # geometry that sets _BRIDGE) is suspect, and the repair takes its neighbours' edge
        zone = _BRIDGED_ZONE * width_px / cstep
        if at is None:
            suspect |= _bridged_kernel(pc, po, center, w_rows, rows, dec, tol_px, contrast, zone)
        else:
            runs = _runs(at)
            suspect[:, at] |= _bridged_kernel(_columns(pc, runs), _columns(po, runs), center[at],
                                              w_rows[at], _columns(rows, runs), dec, tol_px,
                                              contrast[at], zone)
    # a dark speck on or beside a flank hides the edge at a few stations; their neighbours
    # along the path see it
    return _finish_kernel(rows, suspect, ok, contrast, sigma, (m - 1) / 2.0, float(step_px),
                          closed, _REPAIR_HALF, _F32(_REPAIR_PX), _SPECK_STATIONS)


# how far along the path the speck step reads round a station where its scan stops: the run
# (up to _SPECK_STATIONS + 1 stations on), the medians over ±_REPAIR_HALF round the stations
# either side of it, each over ±_REPAIR_HALF
_SPECK_READS = _SPECK_STATIONS + 2 * _REPAIR_HALF + 1


def _near_synced(rows, ok, m, step_px, closed, near, margin, at) -> np.ndarray:
    """Per centre of ``near`` (centres, reach): whether the speck and repair steps
    (:func:`_finish_kernel`) give the stations within reach of it the edges they give on
    the whole frame, when ``rows`` and ``ok`` hold the edges of the stations ``at`` only
    (NaN and False elsewhere), the windows ``margin`` (per centre) beyond the reach. The
    repair reads ± ``_REPAIR_HALF`` stations, the speck runs it takes lie within
    ``_SPECK_STATIONS`` of the station where :func:`_speck_runs`'s scan along the path stops,
    and each stop reads ± ``_SPECK_READS``: the window holds all that; and the scan must be
    seen to stop where it does on the whole frame, at a station before the runs it needs
    that it cannot skip (:func:`_speck_synced`)."""
    centres, reach = near
    n = rows.shape[1]
    have = np.zeros(n, bool)
    have[at] = True
    side_px = ((rows - (m - 1) / 2.0) * float(step_px)).astype(np.float32)
    first = reach + _REPAIR_HALF + _SPECK_STATIONS          # the farthest stop that marks a read
    out = np.zeros(len(centres), bool)
    for q, (c, h) in enumerate(zip(centres.tolist(), margin.tolist())):
        lo, hi = c - first - _SPECK_READS, c + first + _SPECK_READS
        idx = np.arange(lo, hi + 1)
        if closed:
            idx %= n
        elif lo < 0 or hi >= n:
            idx = idx[(idx >= 0) & (idx < n)]
        if not have[idx].all():
            continue
        # the stop is sought among stations whose own test (±_SPECK_STATIONS and
        # ±_REPAIR_HALF) and handling (±_SPECK_READS) read the window only
        low = c - h - reach + _SPECK_READS
        if not closed and c - h - reach <= 0:
            low = -1
        out[q] = _speck_synced(side_px, ok, closed, _REPAIR_HALF, _F32(_REPAIR_PX),
                               _SPECK_STATIONS, c - first, low)
    return out


@kernel
def _speck_stops(x, oks, i, n, wrap, half, dev, most, out, buf):
    """Whether :func:`_speck_runs`'s scan of one side (edges ``x``, ``oks``; ``out`` ±1)
    stops at station ``i`` to look for a run there (its own test, repeated)."""
    if wrap:
        b = i - most
        b = b + n if b < 0 else b
        c = i + most
        c = c - n if c >= n else c
    elif most <= i < n - most:
        b = i - most
        c = i + most
    else:
        return False
    xi = x[i]
    if not ((out * (xi - x[b]) > dev) & (out * (xi - x[c]) > dev)):
        return False
    # the median of its side's edges round it, gathered afresh (:func:`_speck_dev` keeps a
    # sliding window over a whole scan; these tests jump about)
    return oks[i] and out * _F32(x[i] - _speck_level(x, oks, i - half, i + half + 1, wrap,
                                                     buf)) > dev


@kernel
def _speck_synced(side_px, ok, closed, half, dev, most, start, low):
    """Whether :func:`_speck_runs`'s scan along the path (from station 0, both sides) surely
    stops at or steps onto some station between ``low`` and ``start`` (unwrapped station
    numbers; round a closed path): where it does not stop at any of ``most + 1`` stations
    in a row, the next is reached (a run it skips is at most that long), and station 0 is
    where it begins. ``low`` -1: the path's open start."""
    n = side_px.shape[1]
    wrap = closed and n > 2 * half + 1
    buf = np.empty(2 * half + 1, np.float32)
    for s in range(2):
        x = side_px[s]
        oks = ok[s]
        out = _F32(1.0) if s else _F32(-1.0)
        quiet = 0
        sure = False
        v = start - 1
        while True:
            a = v % n if closed else v
            if (closed and a == n - 1) or (not closed and v < 0):
                # the station after v is the scan's first
                sure = True
                break
            if v < low:
                break
            if _speck_stops(x, oks, a, n, wrap, half, dev, most, out, buf):
                quiet = 0
            else:
                quiet += 1
                if quiet > most:
                    sure = True
                    break
            v -= 1
        if not sure:
            return False
    return True


@kernel
def _shift_valid(shaded, rows, ok, suspect):
    """``shaded - rows`` and ``ok & ~suspect & isfinite(shift)``, (2, N), in one pass (numpy's
    four whole-array steps and their temporaries)."""
    n = rows.shape[1]
    shift = np.empty((2, n), np.float64)
    valid = np.empty((2, n), np.bool_)
    for s in range(2):
        for i in range(n):
            d = shaded[s, i] - rows[s, i]
            shift[s, i] = d
            valid[s, i] = ok[s, i] and not suspect[s, i] and np.isfinite(d)
    return shift, valid


@kernel
def _roomy(shaded, valid, half_step, need):
    """``valid & ((shaded[1] - shaded[0]) * half_step >= need)``, (2, N): the edges the step
    model may move (the bead wide enough for its flank)."""
    n = shaded.shape[1]
    use = np.empty((2, n), np.bool_)
    for i in range(n):
        roomy = (shaded[1, i] - shaded[0, i]) * half_step >= need
        use[0, i] = valid[0, i] and roomy
        use[1, i] = valid[1, i] and roomy
    return use


@kernel
def _speck_level(x, ok, k0, k1, wrap, buf):
    """Median of the valid edges of stations ``k0`` to ``k1 - 1`` (NaN: none)."""
    n = x.shape[0]
    cnt = 0
    for k in range(k0, k1):
        a = k % n if wrap else k
        if 0 <= a < n and ok[a] and x[a] == x[a]:
            buf[cnt] = x[a]
            cnt += 1
    return _median_sorted(buf, cnt) if cnt else _F32(np.nan)


@inlined
def _speck_in(x, ok, k, wrap):
    """Station ``k``'s place in the side ``x`` (round a closed path with ``wrap``), and whether
    its edge counts in a median (valid, and within the path)."""
    n = x.shape[0]
    a = k % n if wrap else k
    return a, 0 <= a < n and ok[a] and x[a] == x[a]


@inlined
def _slide_out(win, x):
    """Remove one ``x`` from the sorted ``win`` (finite values, then +inf to its end), by a
    fixed sequence of compares and selects: the sorted buffer's searches and shifts
    mispredict (:func:`_window_remove`)."""
    w = win.shape[0]
    r = 0
    for a in range(w):
        r += win[a] < x                         # x's first place
    for a in range(w - 1):
        win[a] = win[a + 1] if a >= r else win[a]
    win[w - 1] = np.inf


@inlined
def _slide_in(win, y):
    """Insert ``y`` into the sorted ``win`` (finite values, then +inf; one place free) after
    the values not above it, as :func:`_window_add` does, by compares and selects."""
    w = win.shape[0]
    r = 0
    for a in range(w):
        r += win[a] <= y
    for a in range(w - 1, 0, -1):
        win[a] = win[a - 1] if a > r else win[a]
    win[r] = y


@inlined
def _speck_median(x, ok, i, half, wrap, win, at):
    """:func:`_speck_level` of station ``i``'s window (``half`` stations either side), from the
    sorted window ``win`` (+inf beyond its count) of the station last asked for (``at``: that
    station and its count), which slides a station at a time (one value leaves, one comes
    in: :func:`_slide_out`, :func:`_slide_in`) where ``i`` lies within ``half`` stations of
    it, and is gathered again elsewhere; ``win`` and ``at`` are updated. The same median: the
    window holds the same values in order (finite: NaN edges take no part, and the edges'
    px are never -0.0, which would sort with 0.0 in either order)."""
    cnt = at[1]
    if 0 < abs(i - at[0]) <= half:
        d = 1 if i > at[0] else -1
        for c in range(at[0] + d, i + d, d):
            la, leaves = _speck_in(x, ok, c - d * (half + 1), wrap)
            ca, comes = _speck_in(x, ok, c + d * half, wrap)
            if leaves:
                _slide_out(win, x[la])
                cnt -= 1
            if comes:
                _slide_in(win, x[ca])
                cnt += 1
    else:
        win[:] = np.inf
        cnt = 0
        for k in range(i - half, i + half + 1):
            a, inside = _speck_in(x, ok, k, wrap)
            if inside:
                cnt = _window_add(win, cnt, x[a])
    at[0] = i
    at[1] = cnt
    if cnt == 0:
        return _F32(np.nan)
    mid = cnt // 2
    return win[mid] if cnt % 2 else (win[mid - 1] + win[mid]) / _F32(2.0)


@inlined
def _speck_dev(x, ok, i, half, wrap, out, level, win, at):
    """How far station ``i``'s edge ``x[i]`` lies outwards (``out`` = ±1) of the median of its
    side's edges within ``half`` stations either side (0 where it has none). ``level`` (N,)
    keeps each station's median once taken (NaN: not yet), ``win`` and ``at`` the side's
    sliding window (:func:`_speck_median`): the runs' tests read a station's median again
    and again, and mostly their neighbours' next (on hard dark frames, whose edges stray at
    many stations, each a sort of 21 values: :func:`_finish_kernel` 1-3.6 ms a call at
    2448×2048; measured alone on the 23 calls of 16 such frames, 29.4 → 21.4 ms)."""
    if not (ok[i] and x[i] == x[i]):
        return _F32(0.0)
    # never NaN: station i itself is among them
    if level[i] != level[i]:
        level[i] = _speck_median(x, ok, i, half, wrap, win, at)
    return out * _F32(x[i] - level[i])


@kernel
def _speck_runs(side_px, ok, suspect, closed, half, dev, most):
    """Mark suspect the edges of a dark speck that blends into the flank (as dark as the
    bead, no dip or shoulder for the walk to see): ``suspect`` (2, N) is updated in place.

    A speck is a compact blob: the edge it pulls out jumps out and back within the speck's
    diameter along the path, on one side, while a wide stretch of bead is long and both
    its edges move. So an edge run of at most ``most`` stations farther out than ``dev`` px
    beyond the median of its side's edges over ``half`` stations either side is suspect
    where, over those stations, the other side's edge stays within ``dev`` of its own
    median, no other station within ``half`` of the run strays from its side's median by
    more than ``dev`` (an isolated excursion, not a flickering stretch of a defect), and
    the side's edges ``most`` stations before and after the run agree within ``dev`` (it
    came back: not the start of a ramp). ``side_px`` (2, N): left and right edges, px.
    Medians are taken only round stations that stand out of both stations ``most`` away
    (every station of such a run does): a running median over every station cost 1 ms of
    the 2448×2048 bench frame."""
    n = side_px.shape[1]
    wrap = closed and n > 2 * half + 1
    if n <= 2 * (half + most) + 1:
        return
    buf = np.empty(2 * half + 1, np.float32)
    cand = np.zeros(n, np.bool_)
    levels = np.full((2, n), np.nan, np.float32)     # each side's medians, once taken
    wins = np.empty((2, 2 * half + 1), np.float32)   # and its sliding window
    ats = np.full((2, 2), -n - 2, np.int64)
    for s in range(2):
        x = side_px[s]
        xo = side_px[1 - s]
        oks = ok[s]
        oko = ok[1 - s]
        lv, win, at = levels[s], wins[s], ats[s]
        lvo, wino, ato = levels[1 - s], wins[1 - s], ats[1 - s]
        out = _F32(1.0) if s else _F32(-1.0)         # outwards: the left edge's px fall
        # candidates, in a pass without branches (a NaN edge compares false)
        for i in range(most, n - most):
            xi = x[i]
            cand[i] = (out * (xi - x[i - most]) > dev) & (out * (xi - x[i + most]) > dev)
        if wrap:
            for i in list(range(most)) + list(range(n - most, n)):
                xi = x[i]
                b = i - most
                b = b + n if b < 0 else b
                c = i + most
                c = c - n if c >= n else c
                cand[i] = (out * (xi - x[b]) > dev) & (out * (xi - x[c]) > dev)
        i = 0
        while i < n:
            if not (cand[i] and oks[i]):
                i += 1
                continue
            if not _speck_dev(x, oks, i, half, wrap, out, lv, win, at) > dev:
                i += 1
                continue
            # the run round station i (at most one station longer than allowed)
            i0 = i
            while i0 > i - most and (wrap or i0 > 0) and \
                    _speck_dev(x, oks, (i0 - 1) % n, half, wrap, out, lv, win, at) > dev:
                i0 -= 1
            j = i + 1
            while j <= i0 + most and (wrap or j < n) and \
                    _speck_dev(x, oks, j % n, half, wrap, out, lv, win, at) > dev:
                j += 1
            take = j - i0 <= most and (wrap or (i0 >= half + most and j + half + most <= n))
            # the other side stays on its median, or moves by a small fraction of this side's
            # excursion: a speck pulls the locator's box and centre towards itself, and the
            # other side's walk with them; a widening bead moves both edges alike
            pulled = False
            for k in range(i0, j):
                if take:
                    do = abs(_speck_dev(xo, oko, k % n, half, wrap, -out, lvo, wino, ato))
                    take = do <= max(dev, _F32(_SPECK_PULL) *
                                     _speck_dev(x, oks, k % n, half, wrap, out, lv, win, at))
                    pulled |= do > dev
            for k in range(i0 - half, j + half):
                if take and (k < i0 or k >= j):
                    take = abs(_speck_dev(x, oks, k % n, half, wrap, out, lv, win, at)) <= dev
            if take:
                before = _speck_level(x, oks, i0 - most, i0, wrap, buf)
                after = _speck_level(x, oks, j, j + most, wrap, buf)
                if abs(after - before) <= dev:
                    for k in range(i0, j):
                        suspect[s, k % n] = True
                        # the other side's pulled edges too: the repair takes them back
                        # to their trend where they stray from it by more than dev
                        if pulled:
                            suspect[1 - s, k % n] = True
            i = max(j, i + 1)


@kernel
def _finish_kernel(rows, suspect, ok, contrast, sigma, mid, step_px, closed, half, dev, speck):
    """find_edges' last steps in one call: the rows (2, N, float64) as px from the path
    (float32), the edges of specks marked suspect (:func:`_speck_runs`, runs of up to
    ``speck`` stations; 0: none), each side's repair (:func:`_repair_kernel`), found where
    both sides are ok, in order and the bead stands out (NaN edges elsewhere), and the mean
    blur. numpy's whole-array steps and two calls took ~10 us of a gap end's find_edges call."""
    n = rows.shape[1]
    side_px = np.empty((2, n), np.float32)
    for s in range(2):
        for i in range(n):
            side_px[s, i] = _F32((rows[s, i] - mid) * step_px)
    suspect = suspect.copy()
    _speck_runs(side_px, ok, suspect, closed, half, dev, speck)
    left = _repair_kernel(side_px[0], suspect[0], ok[0], closed, half, dev)
    right = _repair_kernel(side_px[1], suspect[1], ok[1], closed, half, dev)
    found = np.empty(n, np.bool_)
    sigma_px = np.empty(n, np.float32)
    for i in range(n):
        f = ok[0, i] and ok[1, i] and right[i] > left[i] and contrast[i] > 0
        found[i] = f
        if not f:
            left[i] = np.nan
            right[i] = np.nan
        sigma_px[i] = _F32(0.5) * (sigma[0, i] + sigma[1, i])
    return left, right, found, sigma_px


def _prepare(prof, bright, smooth_stations, closed, dec, width_px, cstep):
    """Smoothed profiles (M, N) float32, those the locator and the walk read (every
    ``dec``-th sample, a dark bead's specular ridge bridged), the same before the
    bridging (the same array where nothing was bridged), and the locator's cumulative sums
    of them where the smoothing made them (else None)."""
    # a dark bead's specular ridge (bright, so a dip once flipped) splits it in two lobes and
    # the locator would take one lobe for the bead; a closing over the ridge's width
    # (≈ 0.12 of the half width either side of its crest, by the cap's geometry) bridges it,
    # while edges and ramps stay where they are. A bright bead's ridge is a peak: nothing to
    # bridge, and a closing there fills the dark shaded flank's dips instead (measured: more
    # false "thin" calls)
    span = int(np.ceil(_BRIDGE * width_px / cstep)) | 1
    bridge = not bright and span > 1 and (prof.shape[0] - 1) // dec + 1 > span
    sums = None
    if prof.dtype == np.uint8 and max(int(smooth_stations), 1) == 3:
        # the usual frame: smoothing and the locator's sums in one compiled pass, and the walk
        # reads every dec-th row of p instead of a decimated copy (the same floats; in the
        # pipeline on the 2448×2048 bench frame, smoothing, copy, sums and locator 1.07 →
        # 0.88 ms, the walk 1.52 → 1.59 ms: a copy costs more than the strided rows)
        k_along, k_across = _smooth_taps(3, bool(bright), float(cstep / dec))
        with_sums = not bridge and prof.shape[1] >= 2 * _LOCATE_EVERY
        copy = dec > 1 and not with_sums
        p, pc, cs, cse = _smooth3_u8(prof, k_along[0, 0], k_across[1, 0], k_across[0, 0],
                                     bool(closed), dec, _LOCATE_EVERY, with_sums, copy)
        sums = (cs, cse) if with_sums else None
        if not copy:
            pc = p                  # the same array (compiled code returns a new object)
    else:
        p = _smooth(prof, bright, smooth_stations, closed, cstep / dec)
        pc = np.ascontiguousarray(p[::dec]) if dec > 1 else p
    po = pc
    if bridge:
        pc = cv2.morphologyEx(pc, cv2.MORPH_CLOSE, np.ones((span, 1), np.uint8),
                              borderType=cv2.BORDER_REPLICATE)
    return p, pc, po, sums


def load_frame_dependent_kernels() -> None:
    """Call once, on tiny inputs of the hot path's types, the kernels that only some frames
    reach (the shading shift's median along the path runs on noisy frames only; the
    cumulative sums of profiles the smoothing did not sum, on dark beads and frames averaged
    over more stations; :func:`edges_near`'s check, on dark ones with a gap), so that a
    process warmed on one clean frame has every kernel loaded (the batch's forkserver)."""
    values = np.zeros(16)
    valid = np.ones(16, bool)
    for every in (1, 2):
        _along_median(values, valid, 4, True, every)
    _cumsums(np.zeros((4, 4), np.float32), 2)
    # edges_near's check of the speck step's scan (hard dark frames with a gap)
    _speck_synced(np.zeros((2, 64), np.float32), np.ones((2, 64), bool), True, _REPAIR_HALF,
                  _F32(_REPAIR_PX), _SPECK_STATIONS, 40, 0)


def _noise_aware_stations(contrast, noise, smooth_stations, max_stations, n, *,
                          at_cap=False):
    """How many stations to average profiles over so that a bead's edge stands out of the
    noise as well as it does over ``smooth_stations`` with a contrast ``_SNR_SMOOTH`` times
    the noise of one sample (every frame of the clean and normal presets has more): an
    edge's position scatters as noise / (contrast √k), so k grows as the square of the
    shortfall; odd, at most ``max_stations`` (None: no more than ``smooth_stations``) and a
    quarter of the path.

    Returns (k, shortfall): ``smooth_stations`` and 1.0 when the frame has enough contrast;
    shortfall (≥ 1) is what is left of the contrast-to-noise deficit once k stations are
    averaged (above 1 only where k reached its cap). ``at_cap``: more stations only where
    the shortfall stays above 1 at the cap (a dark bead, see the module's notes)."""
    if max_stations is None or max_stations <= smooth_stations:
        return smooth_stations, 1.0
    ratio = _SNR_SMOOTH
    if at_cap:
        cap = min(int(max_stations) | 1, (n // 4) | 1)
        ratio = _SNR_SMOOTH * math.sqrt(smooth_stations / max(cap, smooth_stations))
    # the usual frame: more than half the contrasts clear the ratio, so their median does
    # (measured on the 2448×2048 bench frame: 0.12 → 0.01 ms)
    if noise <= 0 or _most_clear(contrast, float(noise), ratio):
        return smooth_stations, 1.0
    c = contrast[np.isfinite(contrast) & (contrast > 0)]
    if not c.size or noise <= 0:
        return smooth_stations, 1.0
    snr = float(np.median(c)) / noise
    if snr >= _SNR_SMOOTH:
        return smooth_stations, 1.0
    k = int(np.ceil(smooth_stations * (_SNR_SMOOTH / snr) ** 2)) | 1
    k = int(max(min(k, int(max_stations) | 1, (n // 4) | 1), smooth_stations))
    shortfall = max(_SNR_SMOOTH / snr / float(np.sqrt(k / smooth_stations)), 1.0)
    if at_cap and shortfall <= 1.0:
        return smooth_stations, 1.0
    return k, shortfall


@kernel
def _most_clear(contrast, noise, ratio):
    """Whether the median of the finite, positive ``contrast`` values (float32, numpy's: the
    mean of the two middle ones for an even count) over ``noise`` is at least ``ratio``: so
    many values are that both middle ones are (their float32 mean is then at least the lower
    one). True where there are none (no median to fall short)."""
    cnt = 0
    above = 0
    for x in contrast:
        if np.isfinite(x) and x > 0:
            cnt += 1
            if np.float64(x) / noise >= ratio:
                above += 1
    return cnt == 0 or above >= cnt // 2 + 1


def _noise(prof: np.ndarray, smooth_stations: int) -> float:
    """Noise of the smoothed profiles (M, N), grey levels: from the median absolute
    difference of neighbouring stations (robust to the bead and edges, which change slowly
    along the path), reduced by the smoothing along stations and across (≈ 0.66 for the
    3-tap Gaussian; kept at every sample step, see the module's notes on it)."""
    n = prof.shape[1]
    if n < 2:
        return 0.0
    if prof.dtype == np.uint8:
        # integer differences: their median off a histogram, not a sort of ~17k floats
        # (measured on the 2448×2048 bench frame: 0.27 → 0.03 ms)
        med = _median_absdiff_u8(prof, 3, max(n // 512, 1))
        return med / 0.954 * 0.66 / math.sqrt(max(smooth_stations, 1))
    sub = prof[::3, :: max(n // 512, 1)].astype(np.float32)
    diff = np.abs(sub[:, 1:] - sub[:, :-1])
    sigma = float(np.median(diff)) / 0.954 if diff.size else 0.0
    return sigma * 0.66 / np.sqrt(max(smooth_stations, 1))


@kernel
def _median_absdiff_u8(prof, rows, every):
    """``np.median`` of the absolute differences between neighbouring columns of
    ``prof[::rows, ::every]`` (uint8; the mean of the two middle values for an even count),
    from a histogram of the differences (0 … 255); 0.0 where there are none."""
    m, n = prof.shape
    hist = np.zeros(256, np.int64)
    cnt = 0
    for j in range(0, m, rows):
        row = prof[j]
        prev = np.int64(row[0])
        for i in range(every, n, every):
            cur = np.int64(row[i])
            hist[abs(cur - prev)] += 1
            prev = cur
            cnt += 1
    if cnt == 0:
        return 0.0
    lo_at = (cnt - 1) // 2
    hi_at = cnt // 2
    lo = -1
    seen = 0
    for d in range(256):
        seen += hist[d]
        if lo < 0 and seen > lo_at:
            lo = d
        if seen > hi_at:
            return 0.5 * (lo + d)
    return 0.0
