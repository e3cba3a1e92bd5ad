//! Invariants of the augmentations: shapes, value ranges, involutions, crop areas,
//! grayscale safety and determinism.

use tessera_engine::Generator;
use tessera_ssl::data::augment::color::{adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
use tessera_ssl::data::augment::crop::resized_crop;
use tessera_ssl::data::augment::*;
use tessera_ssl::data::{Image, Region};

/// A deterministic pseudo-random image in [0, 1].
fn noise(c: usize, h: usize, w: usize, seed: u64) -> Image {
    let mut g = Generator::new(seed);
    Image::new(c, h, w, (0..c * h * w).map(|_| g.next_f64() as f32).collect()).unwrap()
}

fn in_unit_range(img: &Image) -> bool {
    img.data().iter().all(|v| (0.0..=1.0).contains(v))
}

#[test]
fn random_resized_crop_areas_lie_in_scale() {
    let scale = (0.2, 1.0);
    let crop = RandomResizedCrop::square(28, scale).unwrap();
    let mut rng = Generator::new(1);
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for _ in 0..2000 {
        let r = crop.sample_region(28, 28, &mut rng);
        assert!(r.top + r.height <= 28 && r.left + r.width <= 28 && r.height > 0 && r.width > 0);
        let frac = r.area() as f64 / 784.0;
        // Rounding each side to whole pixels moves the area by at most about one row and column.
        let slack = (r.height + r.width + 1) as f64 / 784.0;
        assert!(frac >= scale.0 - slack && frac <= scale.1 + 1e-12, "area fraction {frac} for {r:?}");
        let ratio = r.width as f64 / r.height as f64;
        assert!(ratio > 0.6 && ratio < 1.6, "aspect ratio {ratio}");
        lo = lo.min(frac);
        hi = hi.max(frac);
    }
    assert!(lo < 0.25 && hi > 0.9, "sampled fractions span the range: [{lo}, {hi}]");
    // A fixed scale on a wide image (most aspect ratios fit, so a try always succeeds here).
    let crop = RandomResizedCrop::new((16, 16), (0.5, 0.5), (0.5, 2.0)).unwrap();
    for _ in 0..200 {
        let r = crop.sample_region(40, 60, &mut rng);
        let frac = r.area() as f64 / 2400.0;
        assert!((frac - 0.5).abs() < 0.06, "area fraction {frac}");
    }
}

#[test]
fn random_resized_crop_falls_back_to_a_central_crop() {
    // A 1x50 strip cannot host any crop of ratio in [3/4, 4/3] and area >= 90%, so all ten tries fail.
    let crop = RandomResizedCrop::new((8, 8), (0.9, 1.0), (0.75, 4.0 / 3.0)).unwrap();
    let r = crop.sample_region(1, 50, &mut Generator::new(0));
    assert_eq!(r, Region { top: 0, left: 24, height: 1, width: 1 });
    let out = crop.apply(noise(3, 1, 50, 0), &mut Generator::new(0)).unwrap();
    assert_eq!(out.shape(), [3, 8, 8]);
}

#[test]
fn resize_is_exact_at_same_size_and_stays_in_range() {
    let img = noise(2, 9, 13, 4);
    let same = resized_crop(&img, Region { top: 0, left: 0, height: 9, width: 13 }, 9, 13).unwrap();
    assert_eq!(same, img);
    let up = img.resize(40, 7).unwrap();
    assert_eq!(up.shape(), [2, 40, 7]);
    assert!(in_unit_range(&up));
    assert!(resized_crop(&img, Region { top: 5, left: 0, height: 5, width: 13 }, 4, 4).is_err());
}

#[test]
fn flip_is_an_involution() {
    for c in [1, 3, 4] {
        let img = noise(c, 7, 10, c as u64);
        let f = hflip(&img);
        assert_ne!(f, img);
        assert_eq!(f.at(c - 1, 2, 0), img.at(c - 1, 2, 9));
        assert_eq!(hflip(&f), img);
        assert_eq!(vflip(&vflip(&img)), img);
    }
    let always = RandomHorizontalFlip::new(1.0).unwrap();
    let img = noise(3, 5, 5, 9);
    assert_eq!(always.apply(img.clone(), &mut Generator::new(0)).unwrap(), hflip(&img));
    let never = RandomHorizontalFlip::new(0.0).unwrap();
    assert_eq!(never.apply(img.clone(), &mut Generator::new(0)).unwrap(), img);
    assert!(RandomHorizontalFlip::new(1.5).is_err());
}

#[test]
fn color_jitter_keeps_range_and_is_grayscale_safe() {
    let jitter = ColorJitter::new(0.8, 0.8, 0.8, 0.2).unwrap();
    let mut rng = Generator::new(3);
    for c in [1, 2, 3, 4] {
        for s in 0..20 {
            let out = jitter.apply(noise(c, 6, 6, s), &mut rng).unwrap();
            assert_eq!(out.shape(), [c, 6, 6]);
            assert!(in_unit_range(&out));
        }
    }
    // On one channel, saturation and hue are no-ops.
    let gray = noise(1, 5, 5, 1);
    let mut g = gray.clone();
    adjust_saturation(&mut g, 0.1);
    adjust_hue(&mut g, 0.3);
    assert_eq!(g, gray);
    // Brightness 1 and contrast 1 are identities; contrast 0 gives the mean everywhere.
    let mut b = gray.clone();
    adjust_brightness(&mut b, 1.0);
    adjust_contrast(&mut b, 1.0);
    assert_eq!(b, gray);
    adjust_contrast(&mut b, 0.0);
    let mean = gray.data().iter().sum::<f32>() / 25.0;
    assert!(b.data().iter().all(|v| (v - mean).abs() < 1e-5));
    // A full hue turn is an identity (up to rounding); saturation 0 gives gray pixels.
    let rgb = noise(3, 4, 4, 2);
    let mut h = rgb.clone();
    adjust_hue(&mut h, 0.5);
    adjust_hue(&mut h, 0.5);
    assert!(h.data().iter().zip(rgb.data()).all(|(a, b)| (a - b).abs() < 1e-5));
    let mut z = rgb.clone();
    adjust_hue(&mut z, 0.0);
    assert!(z.data().iter().zip(rgb.data()).all(|(a, b)| (a - b).abs() < 1e-5), "HSV round trip");
    // Turning by a third: red (hue 0°) becomes green, orange (1, 0.5, 0) at 30° becomes
    // spring green (0, 1, 0.5) at 150°. Planes: R, G, B of the two pixels.
    let mut red = Image::new(3, 1, 2, vec![1.0, 1.0, 0.0, 0.5, 0.0, 0.0]).unwrap();
    adjust_hue(&mut red, 1.0 / 3.0);
    let want = [0.0, 0.0, 1.0, 1.0, 0.0, 0.5];
    assert!(red.data().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{:?}", red.data());
    let mut s = rgb.clone();
    adjust_saturation(&mut s, 0.0);
    assert!((0..16).all(|i| (s.plane(0)[i] - s.plane(1)[i]).abs() < 1e-6 && (s.plane(1)[i] - s.plane(2)[i]).abs() < 1e-6));
    assert!(ColorJitter::new(0.4, 0.4, 0.4, 0.6).is_err());
}

#[test]
fn grayscale_blur_solarize_normalize() {
    let rgb = noise(3, 12, 12, 5);
    let gray = RandomGrayscale::new(1.0).unwrap().apply(rgb.clone(), &mut Generator::new(0)).unwrap();
    assert_eq!(gray.shape(), [3, 12, 12]);
    assert_eq!(gray.plane(0), gray.plane(2));
    assert_eq!(to_grayscale(&rgb).shape(), [1, 12, 12]);
    let one = noise(1, 12, 12, 5);
    assert_eq!(RandomGrayscale::new(1.0).unwrap().apply(one.clone(), &mut Generator::new(0)).unwrap(), one);

    let blur = GaussianBlur::new(5, (1.0, 2.0)).unwrap();
    let out = blur.apply(rgb.clone(), &mut Generator::new(1)).unwrap();
    assert_eq!(out.shape(), rgb.shape());
    assert!(in_unit_range(&out));
    let var = |img: &Image| {
        let m = img.data().iter().sum::<f32>() / img.data().len() as f32;
        img.data().iter().map(|v| (v - m).powi(2)).sum::<f32>()
    };
    assert!(var(&out) < 0.5 * var(&rgb), "blur smooths noise");
    let flat = Image::new(1, 3, 3, vec![0.4; 9]).unwrap();
    let big = GaussianBlur::new(9, (2.0, 2.0)).unwrap().apply(flat.clone(), &mut Generator::new(0)).unwrap();
    assert!(big.data().iter().all(|v| (v - 0.4).abs() < 1e-6), "kernel wider than the image, constant kept");
    assert!(GaussianBlur::new(4, (0.1, 2.0)).is_err());
    assert_eq!(GaussianBlur::for_image_size(224).unwrap(), GaussianBlur::new(23, (0.1, 2.0)).unwrap());

    let sol = Solarize::new(0.5).unwrap().apply(rgb.clone(), &mut Generator::new(0)).unwrap();
    for (a, b) in rgb.data().iter().zip(sol.data()) {
        assert_eq!(*b, if *a >= 0.5 { 1.0 - a } else { *a });
    }

    let norm = Normalize::new(vec![0.5, 0.4, 0.3], vec![0.2, 0.25, 0.5]).unwrap();
    let n = norm.apply(rgb.clone(), &mut Generator::new(0)).unwrap();
    assert!((n.at(1, 3, 4) - (rgb.at(1, 3, 4) - 0.4) / 0.25).abs() < 1e-6);
    let err = norm.apply(one.clone(), &mut Generator::new(0)).unwrap_err().to_string();
    assert!(err.contains("3 channels") && err.contains("has 1"), "{err}");
    assert!(Normalize::new(vec![0.5], vec![0.0]).is_err());
    assert!(Normalize::new(vec![0.5], vec![0.5]).unwrap().apply(rgb, &mut Generator::new(0)).is_ok());
}

#[test]
fn simclr_pipeline_shapes_ranges_and_determinism() {
    let fm = simclr(&SimclrConfig::fashion_mnist()).unwrap();
    let cifar = simclr(&SimclrConfig::cifar(32)).unwrap();
    let imnet = simclr(&SimclrConfig::imagenet(48)).unwrap();
    for s in 0..30 {
        let a = fm.apply(noise(1, 28, 28, s), &mut Generator::new(s).fork(1)).unwrap();
        let b = fm.apply(noise(1, 28, 28, s), &mut Generator::new(s).fork(1)).unwrap();
        assert_eq!(a, b, "same stream, same pixels");
        assert_eq!(a.shape(), [1, 28, 28]);
        assert!(in_unit_range(&a));
        let c = cifar.apply(noise(3, 32, 32, s), &mut Generator::new(s)).unwrap();
        assert_eq!(c.shape(), [3, 32, 32]);
        assert!(in_unit_range(&c));
        let d = imnet.apply(noise(3, 64, 64, s), &mut Generator::new(s)).unwrap();
        assert_eq!(d.shape(), [3, 48, 48]);
        assert!(in_unit_range(&d));
    }
    let two = [0, 1].map(|v| fm.apply(noise(1, 28, 28, 0), &mut Generator::new(0).fork(v)).unwrap());
    assert_ne!(two[0], two[1], "different streams, different views");
    let bad = SimclrConfig { scale: (0.5, 0.2), ..SimclrConfig::fashion_mnist() };
    let err = simclr(&bad).err().expect("inverted scale is rejected").to_string();
    assert!(err.contains("RandomResizedCrop") && err.contains("scale"), "{err}");
    let normed = SimclrConfig { normalize: Some((vec![0.2860], vec![0.3530])), ..SimclrConfig::fashion_mnist() };
    assert_eq!(simclr(&normed).unwrap().len(), 5);
}

#[test]
fn random_apply_respects_probability() {
    let always_black = RandomApply::new(ColorJitter::new(0.0, 0.0, 0.0, 0.0).unwrap(), 0.5).unwrap();
    let img = noise(1, 4, 4, 0);
    assert_eq!(always_black.apply(img.clone(), &mut Generator::new(0)).unwrap(), img);
    let sol = RandomApply::new(Solarize::new(0.0).unwrap(), 0.3).unwrap();
    let mut rng = Generator::new(7);
    let flat = Image::new(1, 1, 1, vec![0.25]).unwrap();
    let hits = (0..4000).filter(|_| sol.apply(flat.clone(), &mut rng).unwrap().data()[0] != 0.25).count();
    assert!((hits as f64 / 4000.0 - 0.3).abs() < 0.03, "applied {hits} of 4000 times");
    assert!(RandomApply::new(Solarize::new(0.5).unwrap(), -0.1).is_err());
}
